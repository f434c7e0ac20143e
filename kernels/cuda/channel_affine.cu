// Per-channel affine map (torchvision's transform_input) and its data gradient (dy times the
// channel's scale); constants travel by value.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void channel_affine_forward_kernel(cuda_math::ChannelAffineConstants k, int64_t count, int64_t channels,
                                              int64_t spatial, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::channel_affine_value(k, (i / spatial) % channels, x[i]);
}

__global__ void channel_affine_backward_data_kernel(cuda_math::ChannelAffineConstants k, int64_t count,
                                                    int64_t channels, int64_t spatial, const float* __restrict__ dy,
                                                    float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(
        dx + i, cuda_math::channel_affine_gradient_value(k, cuda_math::channel_of(i, channels, spatial), dy[i]),
        accumulate);
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

void channel_affine_backward_data(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                                  const cuda_math::ChannelAffineConstants& constants, const float* dy, float* dx,
                                  bool accumulate) {
  const int64_t count = batch * channels * spatial;
  if (count <= 0) return;
  channel_affine_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(constants, count, channels,
                                                                                        spatial, dy, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("channel_affine_backward_data_kernel");
}

}  // namespace veto::cuda
