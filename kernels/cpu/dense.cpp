#include "kernels/cpu/kernels.h"

namespace veto::cpu {

// Rows of x against rows of w: both are read contiguously, so the dot products vectorize.
void dense_forward(int64_t batch, int64_t in_features, int64_t out_features, const float* x, const float* w,
                   const float* bias, float* y) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < out_features; ++o) {
      const float* xr = x + n * in_features;
      const float* wr = w + o * in_features;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < in_features; ++i) acc += xr[i] * wr[i];
      y[n * out_features + o] = acc + (bias ? bias[o] : 0.0f);
    }
}

}  // namespace veto::cpu
