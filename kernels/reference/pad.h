// Reference constant padding of (C,H,W): the input sits at offset `before` of the output,
// every other output cell holds `value`.
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

template <typename T>
void pad_forward(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* x, T* y) {
  const int64_t out_c = channels + p.before[0] + p.after[0];
  const int64_t out_h = in_h + p.before[1] + p.after[1], out_w = in_w + p.before[2] + p.after[2];
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < out_c; ++oc) {
      const int64_t c = oc - p.before[0];
      for (int64_t i = 0; i < out_h; ++i) {
        const int64_t h = i - p.before[1];
        for (int64_t j = 0; j < out_w; ++j) {
          const int64_t w = j - p.before[2];
          const bool inside = c >= 0 && c < channels && h >= 0 && h < in_h && w >= 0 && w < in_w;
          y[((n * out_c + oc) * out_h + i) * out_w + j] =
              inside ? x[((n * channels + c) * in_h + h) * in_w + w] : static_cast<T>(p.value);
        }
      }
    }
}

// The padding is constant: its gradient is dropped, and dx is the interior crop of dy.
template <typename T>
void pad_backward_data(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* dy,
                       T* dx) {
  const int64_t out_c = channels + p.before[0] + p.after[0];
  const int64_t out_h = in_h + p.before[1] + p.after[1], out_w = in_w + p.before[2] + p.after[2];
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t h = 0; h < in_h; ++h)
        for (int64_t w = 0; w < in_w; ++w)
          dx[((n * channels + c) * in_h + h) * in_w + w] =
              dy[((n * out_c + c + p.before[0]) * out_h + h + p.before[1]) * out_w + w + p.before[2]];
}

}  // namespace veto::reference
