#include <cstring>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {

// Each sample's part is one contiguous block in x and in y: one memcpy per sample.
void concat_forward(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                    int64_t total_channels, const float* x, float* y) {
  const size_t bytes = static_cast<size_t>(part_channels * spatial) * sizeof(float);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    std::memcpy(y + (n * total_channels + channel_offset) * spatial, x + n * part_channels * spatial, bytes);
}

void concat_backward_data(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                          int64_t total_channels, const float* dy, float* dx, bool accumulate) {
  const int64_t block = part_channels * spatial;  // contiguous per sample in dy and dx
  if (!accumulate) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < batch; ++n)
      std::memcpy(dx + n * block, dy + (n * total_channels + channel_offset) * spatial,
                  static_cast<size_t>(block) * sizeof(float));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    const float* from = dy + (n * total_channels + channel_offset) * spatial;
    float* to = dx + n * block;
#pragma omp simd
    for (int64_t i = 0; i < block; ++i) to[i] += from[i];
  }
}

}  // namespace veto::cpu
