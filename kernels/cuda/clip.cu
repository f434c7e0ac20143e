// Clip and its data gradient on the device: one thread per element (grid-stride), math in
// element_math.h.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void clip_forward_kernel(int64_t count, float lo, float hi, const float* __restrict__ x,
                                    float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::clip_value(x[i], lo, hi);
}

// dx never aliases y or dy (Backend contract), so all three may be __restrict__.
__global__ void clip_backward_data_kernel(int64_t count, float lo, float hi, const float* __restrict__ y,
                                          const float* __restrict__ dy, float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, cuda_math::clip_backward_value(y[i], dy[i], lo, hi), accumulate);
}

}  // namespace

void clip_forward(cudaStream_t stream, int64_t count, float lo, float hi, const float* x, float* y) {
  if (count <= 0) return;
  clip_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, lo, hi, x, y);
  VETO_CUDA_CHECK_LAUNCH("clip_forward_kernel");
}

void clip_backward_data(cudaStream_t stream, int64_t count, float lo, float hi, const float* y, const float* dy,
                        float* dx, bool accumulate) {
  if (count <= 0) return;
  clip_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, lo, hi, y, dy, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("clip_backward_data_kernel");
}

}  // namespace veto::cuda
