// Inference batch norm: one thread per element; the channel comes from the flat NCHW index.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

// No __restrict__ on x/y: in-place use is allowed.
__global__ void batch_norm_forward_kernel(int64_t count, int64_t channels, int64_t spatial, const float* x,
                                          const float* __restrict__ gamma, const float* __restrict__ beta,
                                          const float* __restrict__ mean, const float* __restrict__ var, float eps,
                                          float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = cuda_math::channel_of(i, channels, spatial);
    y[i] = cuda_math::batch_norm_value(x[i], gamma[c], beta[c], mean[c], var[c], eps);
  }
}

}  // namespace

void batch_norm_forward(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial, const float* x,
                        const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                        float* y) {
  const int64_t count = batch * channels * spatial;
  if (count <= 0) return;
  batch_norm_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, channels, spatial, x, gamma,
                                                                              beta, mean, var, eps, y);
  VETO_CUDA_CHECK_LAUNCH("batch_norm_forward_kernel");
}

}  // namespace veto::cuda
