#include <algorithm>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

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

// dx[n,i] = sum_o dy[n,o] * w[o,i]. Threads split the in_features into column strips of w;
// within a strip the sum runs over whole rows of w, contiguous in i (vectorized), and the
// strip (out_features x kStrip floats, 256 KB for 1000 outputs) stays in cache across the
// batch. Summed in the reference's order (o ascending).
void dense_backward_data(int64_t batch, int64_t in_features, int64_t out_features, const float* dy, const float* w,
                         float* dx, bool accumulate) {
  constexpr int64_t kStrip = 64;
  const int64_t strips = (in_features + kStrip - 1) / kStrip;
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t i0 = s * kStrip, width = std::min(kStrip, in_features - i0);
      for (int64_t n = 0; n < batch; ++n) {
        float acc[kStrip] = {};
        const float* g = dy + n * out_features;
        for (int64_t o = 0; o < out_features; ++o) {
          const float* wr = w + o * in_features + i0;
          const float go = g[o];
#pragma omp simd
          for (int64_t i = 0; i < width; ++i) acc[i] += go * wr[i];
        }
        float* dxr = dx + n * in_features + i0;
        for (int64_t i = 0; i < width; ++i) store(mode, dxr[i], acc[i]);
      }
    }
  });
}

}  // namespace veto::cpu
