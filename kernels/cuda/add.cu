// Elementwise add (the residual join), ReLU optionally fused: one thread per element. Its data
// gradient is dy itself (a copy, or an add into dx).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

// No __restrict__: y may alias a or b (in-place joins); each element is read before it is written.
__global__ void add_forward_kernel(int64_t count, const float* a, const float* b, float* y, bool relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::add_value(a[i], b[i], relu);
}

// The gradient at either input is dy; only the accumulating case needs a kernel.
__global__ void add_backward_data_accumulate_kernel(int64_t count, const float* __restrict__ dy,
                                                    float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, dy[i], true);
}

}  // namespace

void add_forward(cudaStream_t stream, int64_t count, const float* a, const float* b, float* y, bool relu) {
  if (count <= 0) return;
  add_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, a, b, y, relu);
  VETO_CUDA_CHECK_LAUNCH("add_forward_kernel");
}

void add_backward_data(cudaStream_t stream, int64_t count, const float* dy, float* dx, bool accumulate) {
  if (count <= 0) return;
  if (!accumulate) {  // dx = dy: a plain device-to-device copy
    VETO_CUDA_CHECK(cudaMemcpyAsync(dx, dy, static_cast<size_t>(count) * sizeof(float), cudaMemcpyDeviceToDevice,
                                    stream));
    return;
  }
  add_backward_data_accumulate_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, dy, dx);
  VETO_CUDA_CHECK_LAUNCH("add_backward_data_accumulate_kernel");
}

}  // namespace veto::cuda
