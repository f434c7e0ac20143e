#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = xr[0];
    for (int64_t c = 1; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c) sum += (yr[c] = std::exp(xr[c] - m));
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

// dx = y * (dy - sum(dy * y)) per row.
void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = y + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < cols; ++c) dot += dyr[c] * yr[c];
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) store(mode, dxr[c], yr[c] * (dyr[c] - dot));
    }
  });
}

}  // namespace veto::cpu
