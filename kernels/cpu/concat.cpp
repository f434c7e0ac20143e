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

}  // namespace veto::cpu
