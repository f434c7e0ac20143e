#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

void global_avg_pool_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, float* y) {
  const float inv = 1.0f / static_cast<float>(spatial);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float* xi = x + nc * spatial;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < spatial; ++i) sum += xi[i];
    y[nc] = sum * inv;
  }
}

void global_avg_pool_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy, float* dx,
                                   bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < batch * channels; ++nc) {
      const float g = dy[nc] / static_cast<float>(spatial);
      float* dxi = dx + nc * spatial;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) store(mode, dxi[i], g);
    }
  });
}

}  // namespace veto::cpu
