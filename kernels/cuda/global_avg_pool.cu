// Global average pool: one block per (n, c) plane; each thread sums a strided share of the
// plane (element_math.h), the block adds the shares and divides by H*W. The backward spreads
// each plane's gradient evenly: one thread per input cell.
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

// Backward: elementwise, each cell reads its plane's output gradient.
__global__ void global_avg_pool_backward_data_kernel(int64_t count, int64_t spatial, const float* __restrict__ dy,
                                                     float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, cuda_math::global_avg_pool_gradient_value(dy[i / spatial], spatial),
                              accumulate);
}

}  // namespace

void global_avg_pool_forward(cudaStream_t stream, int64_t planes, int64_t spatial, const float* x, float* y) {
  if (planes <= 0 || spatial <= 0) return;
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const unsigned int blocks = static_cast<unsigned int>(planes < kMaxBlocks ? planes : kMaxBlocks);
  global_avg_pool_forward_kernel<<<blocks, reduction_threads_for(spatial), 0, stream>>>(planes, spatial, x, y);
  VETO_CUDA_CHECK_LAUNCH("global_avg_pool_forward_kernel");
}

void global_avg_pool_backward_data(cudaStream_t stream, int64_t planes, int64_t spatial, const float* dy, float* dx,
                                   bool accumulate) {
  const int64_t count = planes * spatial;
  if (count <= 0) return;
  global_avg_pool_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, spatial, dy, dx,
                                                                                         accumulate);
  VETO_CUDA_CHECK_LAUNCH("global_avg_pool_backward_data_kernel");
}

}  // namespace veto::cuda
