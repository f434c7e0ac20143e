// Reference ReLU.
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void relu_forward(int64_t count, const T* x, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

}  // namespace veto::reference
