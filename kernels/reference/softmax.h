// Reference softmax over each row, shifted by the row maximum so large logits do not overflow.
#pragma once

#include <cmath>
#include <cstdint>

namespace veto::reference {

template <typename T>
void softmax_forward(int64_t rows, int64_t cols, const T* x, T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T m = xr[0];
    for (int64_t c = 1; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
    T sum = T(0);
    for (int64_t c = 0; c < cols; ++c) sum += (yr[c] = std::exp(xr[c] - m));
    for (int64_t c = 0; c < cols; ++c) yr[c] /= sum;
  }
}

}  // namespace veto::reference
