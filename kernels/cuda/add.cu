// Elementwise add (the residual join), ReLU optionally fused: one thread per element.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

// No __restrict__: y may alias a or b (in-place joins); each element is read before it is written.
__global__ void add_forward_kernel(int64_t count, const float* a, const float* b, float* y, bool relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::add_value(a[i], b[i], relu);
}

}  // namespace

void add_forward(cudaStream_t stream, int64_t count, const float* a, const float* b, float* y, bool relu) {
  if (count <= 0) return;
  add_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, a, b, y, relu);
  VETO_CUDA_CHECK_LAUNCH("add_forward_kernel");
}

}  // namespace veto::cuda
