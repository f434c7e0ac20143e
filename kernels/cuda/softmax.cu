// Softmax over rows: one block per row. Three strided passes (element_math.h): the row
// maximum, the sum of exp(x - max), then exp(x - max) / sum; block reductions in between.
// The backward: one block per row too (a dot product, then an elementwise write).
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

// Backward, one block per row: the dot product sum(dy * y) by a block reduction, then
// dx = y * (dy - dot), each thread writing its own elements.
__global__ void softmax_backward_data_kernel(int64_t rows, int64_t cols, const float* __restrict__ y,
                                             const float* __restrict__ dy, float* __restrict__ dx,
                                             bool accumulate) {
  __shared__ float shared[kMaxReductionThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* y_row = y + r * cols;
    const float* dy_row = dy + r * cols;
    const float dot = block_reduce(
        cuda_math::softmax_backward_partial_dot(y_row, dy_row, cols, threadIdx.x, blockDim.x), shared, SumOp{});
    cuda_math::softmax_backward_write(y_row, dy_row, dx + r * cols, cols, threadIdx.x, blockDim.x, dot, accumulate);
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

void softmax_backward_data(cudaStream_t stream, int64_t rows, int64_t cols, const float* y, const float* dy,
                           float* dx, bool accumulate) {
  if (rows <= 0 || cols <= 0) return;
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const unsigned int blocks = static_cast<unsigned int>(rows < kMaxBlocks ? rows : kMaxBlocks);
  softmax_backward_data_kernel<<<blocks, reduction_threads_for(cols), 0, stream>>>(rows, cols, y, dy, dx,
                                                                                   accumulate);
  VETO_CUDA_CHECK_LAUNCH("softmax_backward_data_kernel");
}

}  // namespace veto::cuda
