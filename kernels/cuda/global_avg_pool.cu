// Global average pool: one block per (n, c) plane; each thread sums a strided share of the
// plane (element_math.h), the block adds the shares and divides by H*W.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void global_avg_pool_forward_kernel(int64_t planes, int64_t spatial, const float* __restrict__ x,
                                               float* __restrict__ y) {
  __shared__ float shared[kMaxReductionThreads];
  for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    const float partial = cuda_math::strided_partial_sum(x + plane * spatial, spatial, threadIdx.x, blockDim.x);
    const float sum = block_reduce(partial, shared, SumOp{});
    if (threadIdx.x == 0) y[plane] = sum / static_cast<float>(spatial);
  }
}

}  // namespace

void global_avg_pool_forward(cudaStream_t stream, int64_t planes, int64_t spatial, const float* x, float* y) {
  if (planes <= 0 || spatial <= 0) return;
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const unsigned int blocks = static_cast<unsigned int>(planes < kMaxBlocks ? planes : kMaxBlocks);
  global_avg_pool_forward_kernel<<<blocks, reduction_threads_for(spatial), 0, stream>>>(planes, spatial, x, y);
  VETO_CUDA_CHECK_LAUNCH("global_avg_pool_forward_kernel");
}

}  // namespace veto::cuda
