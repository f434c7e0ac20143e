// Reference ReLU.
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void relu_forward(int64_t count, const T* x, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

// dx = dy where the output is positive (PyTorch's subgradient: 0 at 0).
template <typename T>
void relu_backward_data(int64_t count, const T* y, const T* dy, T* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

}  // namespace veto::reference
