// Inference batch norm and its data gradient: one thread per element; the channel comes from
// the flat NCHW index.
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

__global__ void batch_norm_backward_data_kernel(int64_t count, int64_t channels, int64_t spatial,
                                                const float* __restrict__ dy, const float* __restrict__ gamma,
                                                const float* __restrict__ var, float eps, float* __restrict__ dx,
                                                bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = cuda_math::channel_of(i, channels, spatial);
    cuda_math::store_gradient(dx + i, dy[i] * cuda_math::batch_norm_gradient_scale(gamma[c], var[c], eps),
                              accumulate);
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

void batch_norm_backward_data(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                              const float* dy, const float* gamma, const float* var, float eps, float* dx,
                              bool accumulate) {
  const int64_t count = batch * channels * spatial;
  if (count <= 0) return;
  batch_norm_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, channels, spatial, dy,
                                                                                    gamma, var, eps, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("batch_norm_backward_data_kernel");
}

}  // namespace veto::cuda
