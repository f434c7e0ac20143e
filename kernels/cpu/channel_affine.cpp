#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

void channel_affine_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, const float* scale,
                            const float* shift, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float s = scale[nc % channels], b = shift[nc % channels];
    const float* xi = x + nc * spatial;
    float* yi = y + nc * spatial;
#pragma omp simd
    for (int64_t i = 0; i < spatial; ++i) yi[i] = xi[i] * s + b;
  }
}

void channel_affine_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy,
                                  const float* scale, float* dx, bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < batch * channels; ++nc) {
      const float s = scale[nc % channels];
      const float* dyi = dy + nc * spatial;
      float* dxi = dx + nc * spatial;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) store(mode, dxi[i], dyi[i] * s);
    }
  });
}

}  // namespace veto::cpu
