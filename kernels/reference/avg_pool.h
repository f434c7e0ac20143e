// Reference average pool with explicit padding. count_include_pad selects the divisor:
// the whole window (torchvision) or only the cells inside the input (Keras).
#pragma once

#include <algorithm>
#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

template <typename T>
void avg_pool_forward(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* x,
                      int64_t out_h, int64_t out_w, T* y) {
  for (int64_t nc = 0; nc < batch * channels; ++nc)
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t h0 = i * p.stride_h - p.pad_top, w0 = j * p.stride_w - p.pad_left;
        T sum = T(0);
        int64_t inside = 0;
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kernel_h, in_h); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kernel_w, in_w); ++w) {
            sum += x[(nc * in_h + h) * in_w + w];
            ++inside;
          }
        const int64_t divisor = p.count_include_pad ? p.kernel_h * p.kernel_w : inside;
        y[(nc * out_h + i) * out_w + j] = divisor > 0 ? sum / T(divisor) : T(0);
      }
}

// Each output's gradient is spread evenly over the input cells its mean read.
template <typename T>
void avg_pool_backward_data(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const T* dy, int64_t out_h, int64_t out_w, T* dx) {
  for (int64_t i = 0; i < batch * channels * in_h * in_w; ++i) dx[i] = T(0);
  for (int64_t nc = 0; nc < batch * channels; ++nc)
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) {
        const int64_t h0 = i * p.stride_h - p.pad_top, w0 = j * p.stride_w - p.pad_left;
        const int64_t hb = std::max<int64_t>(h0, 0), he = std::min(h0 + p.kernel_h, in_h);
        const int64_t wb = std::max<int64_t>(w0, 0), we = std::min(w0 + p.kernel_w, in_w);
        const int64_t inside = std::max<int64_t>(he - hb, 0) * std::max<int64_t>(we - wb, 0);
        const int64_t divisor = p.count_include_pad ? p.kernel_h * p.kernel_w : inside;
        if (divisor == 0) continue;
        const T g = dy[(nc * out_h + i) * out_w + j] / T(divisor);
        for (int64_t h = hb; h < he; ++h)
          for (int64_t w = wb; w < we; ++w) dx[(nc * in_h + h) * in_w + w] += g;
      }
}

}  // namespace veto::reference
