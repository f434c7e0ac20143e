// Reference slice: a strided window of (C,H,W), output index i reading input start + i * step.
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

template <typename T>
void slice_forward(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* x,
                   T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < p.size[0]; ++oc) {
      const int64_t c = p.start[0] + oc * p.step[0];
      for (int64_t i = 0; i < p.size[1]; ++i) {
        const int64_t h = p.start[1] + i * p.step[1];
        for (int64_t j = 0; j < p.size[2]; ++j)
          y[((n * p.size[0] + oc) * p.size[1] + i) * p.size[2] + j] =
              x[((n * channels + c) * in_h + h) * in_w + p.start[2] + j * p.step[2]];
      }
    }
}

// The sliced cells get their output's gradient; every other cell gets 0.
template <typename T>
void slice_backward_data(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const T* dy,
                         T* dx) {
  for (int64_t i = 0; i < batch * channels * in_h * in_w; ++i) dx[i] = T(0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < p.size[0]; ++oc) {
      const int64_t c = p.start[0] + oc * p.step[0];
      for (int64_t i = 0; i < p.size[1]; ++i) {
        const int64_t h = p.start[1] + i * p.step[1];
        for (int64_t j = 0; j < p.size[2]; ++j)
          dx[((n * channels + c) * in_h + h) * in_w + p.start[2] + j * p.step[2]] =
              dy[((n * p.size[0] + oc) * p.size[1] + i) * p.size[2] + j];
      }
    }
}

}  // namespace veto::reference
