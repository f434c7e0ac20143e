// ReLU and its data gradient on the device: one thread per element (grid-stride), math in
// element_math.h.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void relu_forward_kernel(int64_t count, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::relu_value(x[i]);
}

// In place (x == y) must not promise the compiler that the two do not alias.
__global__ void relu_in_place_kernel(int64_t count, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::relu_value(y[i]);
}

// dx never aliases y or dy (Backend contract), so all three may be __restrict__.
__global__ void relu_backward_data_kernel(int64_t count, const float* __restrict__ y, const float* __restrict__ dy,
                                          float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, cuda_math::relu_backward_value(y[i], dy[i]), accumulate);
}

}  // namespace

void relu_forward(cudaStream_t stream, int64_t count, const float* x, float* y) {
  if (count <= 0) return;
  if (x == y) {
    relu_in_place_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, y);
    VETO_CUDA_CHECK_LAUNCH("relu_in_place_kernel");
  } else {
    relu_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, x, y);
    VETO_CUDA_CHECK_LAUNCH("relu_forward_kernel");
  }
}

void relu_backward_data(cudaStream_t stream, int64_t count, const float* y, const float* dy, float* dx,
                        bool accumulate) {
  if (count <= 0) return;
  relu_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, y, dy, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("relu_backward_data_kernel");
}

}  // namespace veto::cuda
