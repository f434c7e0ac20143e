// Reference max pool with explicit padding: padded cells are skipped (never the maximum).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "runtime/ops.h"

namespace veto::reference {

template <typename T>
void max_pool_forward(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* x,
                      int64_t out_h, int64_t out_w, T* y) {
  for (int64_t nc = 0; nc < batch * channels; ++nc)
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t h0 = i * p.stride_h - p.pad_top, w0 = j * p.stride_w - p.pad_left;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kernel_h, in_h); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kernel_w, in_w); ++w)
            m = std::max(m, x[(nc * in_h + h) * in_w + w]);
        y[(nc * out_h + i) * out_w + j] = m;
      }
}

// Each output's gradient goes to the first maximum of its window in row-major order: the
// cell the forward pass keeps (std::max keeps the earlier of equal values).
template <typename T>
void max_pool_backward_data(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const T* x, const T* dy, int64_t out_h, int64_t out_w, T* dx) {
  for (int64_t i = 0; i < batch * channels * in_h * in_w; ++i) dx[i] = T(0);
  for (int64_t nc = 0; nc < batch * channels; ++nc)
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t h0 = i * p.stride_h - p.pad_top, w0 = j * p.stride_w - p.pad_left;
        int64_t best = -1;
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kernel_h, in_h); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kernel_w, in_w); ++w) {
            const int64_t at = (nc * in_h + h) * in_w + w;
            if (best < 0 || x[best] < x[at]) best = at;
          }
        if (best >= 0) dx[best] += dy[(nc * out_h + i) * out_w + j];
      }
}

}  // namespace veto::reference
