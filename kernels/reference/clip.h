// Reference clip (ONNX Clip; ReLU6 is clip to [0, 6]).
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

// NaN stays NaN (both comparisons are false), as in torch.clamp.
template <typename T>
void clip_forward(const ClipOp& p, int64_t count, const T* x, T* y) {
  const T lo = static_cast<T>(p.min), hi = static_cast<T>(p.max);
  for (int64_t i = 0; i < count; ++i) {
    const T v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

// dx = dy where min < y < max, else 0: PyTorch's hardtanh rule (0 at either bound), read
// off the forward output y.
template <typename T>
void clip_backward_data(const ClipOp& p, int64_t count, const T* y, const T* dy, T* dx) {
  const T lo = static_cast<T>(p.min), hi = static_cast<T>(p.max);
  for (int64_t i = 0; i < count; ++i) dx[i] = (lo < y[i] && y[i] < hi) ? dy[i] : T(0);
}

}  // namespace veto::reference
