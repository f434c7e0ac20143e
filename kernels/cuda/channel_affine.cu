// Per-channel affine map (torchvision's transform_input); constants travel by value.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void channel_affine_forward_kernel(cuda_math::ChannelAffineConstants k, int64_t count, int64_t channels,
                                              int64_t spatial, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::channel_affine_value(k, (i / spatial) % channels, x[i]);
}

}  // namespace

void channel_affine_forward(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                            const cuda_math::ChannelAffineConstants& constants, const float* x, float* y) {
  const int64_t count = batch * channels * spatial;
  if (count <= 0) return;
  channel_affine_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(constants, count, channels,
                                                                                  spatial, x, y);
  VETO_CUDA_CHECK_LAUNCH("channel_affine_forward_kernel");
}

}  // namespace veto::cuda
