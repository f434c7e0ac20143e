// Attribution kernels: the integrated-gradients interpolation (elementwise) and one interval of
// layer conductance (one block per channel; per-lane math in element_math.h).
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

// No __restrict__: nothing forbids y being x or baseline (an in-place step); each element is
// read before it is written.
__global__ void interpolate_kernel(int64_t count, const float* baseline, const float* x, float alpha, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::interpolate_value(baseline[i], x[i], alpha);
}

// One block per channel: each thread adds its lane's v = grad * (upper - lower) into map and
// sums them in double; the block reduction combines the lanes and one thread adds the channel's
// total to sums[c]. No atomics: every channel's sum is formed in one fixed order.
__global__ void conductance_accumulate_kernel(int64_t channels, int64_t spatial, const float* __restrict__ grad,
                                              const float* __restrict__ upper, const float* __restrict__ lower,
                                              float* __restrict__ sums, float* __restrict__ map) {
  __shared__ double shared[kMaxReductionThreads];
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    const int64_t offset = c * spatial;
    const double partial = cuda_math::conductance_partial_sum(grad + offset, upper + offset, lower + offset,
                                                              map ? map + offset : nullptr, spatial, threadIdx.x,
                                                              blockDim.x);
    const double sum = block_reduce(partial, shared, SumOp{});
    if (threadIdx.x == 0) sums[c] += static_cast<float>(sum);
  }
}

}  // namespace

void interpolate(cudaStream_t stream, int64_t count, const float* baseline, const float* x, float alpha, float* y) {
  if (count <= 0) return;
  interpolate_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, baseline, x, alpha, y);
  VETO_CUDA_CHECK_LAUNCH("interpolate_kernel");
}

void conductance_accumulate(cudaStream_t stream, int64_t channels, int64_t spatial, const float* grad,
                            const float* upper, const float* lower, float* sums, float* map) {
  if (channels <= 0 || spatial <= 0) return;
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const unsigned int blocks = static_cast<unsigned int>(channels < kMaxBlocks ? channels : kMaxBlocks);
  conductance_accumulate_kernel<<<blocks, reduction_threads_for(spatial), 0, stream>>>(channels, spatial, grad, upper,
                                                                                       lower, sums, map);
  VETO_CUDA_CHECK_LAUNCH("conductance_accumulate_kernel");
}

}  // namespace veto::cuda
