#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

// Inference batch norm as a per-channel affine map y = x * scale + shift.
void batch_norm_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, const float* weight,
                        const float* bias, const float* mean, const float* var, float eps, float* y) {
  std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    scale[c] = weight[c] / std::sqrt(var[c] + eps);
    shift[c] = bias[c] - mean[c] * scale[c];
  }
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float s = scale[nc % channels], b = shift[nc % channels];
    const float* xi = x + nc * spatial;
    float* yi = y + nc * spatial;
#pragma omp simd
    for (int64_t i = 0; i < spatial; ++i) yi[i] = xi[i] * s + b;
  }
}

// dx = dy * weight / sqrt(var + eps): inference statistics are constants. The scale is
// formed in the reference's order of operations.
void batch_norm_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy,
                              const float* weight, const float* var, float eps, float* dx, bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < batch * channels; ++nc) {
      const int64_t c = nc % channels;
      const float s = 1.0f / std::sqrt(var[c] + eps) * weight[c];
      const float* dyi = dy + nc * spatial;
      float* dxi = dx + nc * spatial;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) store(mode, dxi[i], dyi[i] * s);
    }
  });
}

}  // namespace veto::cpu
