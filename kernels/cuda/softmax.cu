// Softmax over rows: one block per row. Three strided passes (element_math.h): the row
// maximum, the sum of exp(x - max), then exp(x - max) / sum; block reductions in between.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void softmax_forward_kernel(int64_t rows, int64_t cols, const float* x, float* y) {
  __shared__ float shared[kMaxReductionThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * cols;
    const float row_max =
        block_reduce(cuda_math::softmax_partial_max(row, cols, threadIdx.x, blockDim.x), shared, MaxOp{});
    const float exp_sum = block_reduce(
        cuda_math::softmax_partial_exp_sum(row, cols, threadIdx.x, blockDim.x, row_max), shared, SumOp{});
    // In place (x == y) is safe: each thread rewrites only its own elements, after every
    // thread has finished reading the row (the reductions synchronize the block).
    cuda_math::softmax_write(row, y + r * cols, cols, threadIdx.x, blockDim.x, row_max, exp_sum);
  }
}

}  // namespace

void softmax_forward(cudaStream_t stream, int64_t rows, int64_t cols, const float* x, float* y) {
  if (rows <= 0 || cols <= 0) return;
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const unsigned int blocks = static_cast<unsigned int>(rows < kMaxBlocks ? rows : kMaxBlocks);
  softmax_forward_kernel<<<blocks, reduction_threads_for(cols), 0, stream>>>(rows, cols, x, y);
  VETO_CUDA_CHECK_LAUNCH("softmax_forward_kernel");
}

}  // namespace veto::cuda
