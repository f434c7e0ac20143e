// Reference ResNet "option A" shortcut: y = zero-pad-channels(x[:, :, ::stride, ::stride]).
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

template <typename T>
void zero_pad_shortcut_forward(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                               int64_t in_w, const T* x, T* y) {
  const int64_t out_c = channels + p.pad_channels_before + p.pad_channels_after;
  const int64_t out_h = (in_h + p.stride - 1) / p.stride, out_w = (in_w + p.stride - 1) / p.stride;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < out_c; ++oc) {
      const int64_t c = oc - p.pad_channels_before;
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j)
          y[((n * out_c + oc) * out_h + i) * out_w + j] =
              (c >= 0 && c < channels) ? x[((n * channels + c) * in_h + i * p.stride) * in_w + j * p.stride] : T(0);
    }
}

// The gradient reaches the subsampled pixels of the kept channels; every other pixel gets 0.
template <typename T>
void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                                     int64_t in_w, const T* dy, T* dx) {
  const int64_t out_c = channels + p.pad_channels_before + p.pad_channels_after;
  const int64_t out_h = (in_h + p.stride - 1) / p.stride, out_w = (in_w + p.stride - 1) / p.stride;
  for (int64_t i = 0; i < batch * channels * in_h * in_w; ++i) dx[i] = T(0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j)
          dx[((n * channels + c) * in_h + i * p.stride) * in_w + j * p.stride] =
              dy[((n * out_c + c + p.pad_channels_before) * out_h + i) * out_w + j];
}

}  // namespace veto::reference
