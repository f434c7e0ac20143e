// Attribution kernels: the integrated-gradients interpolation (elementwise) and the intervals
// of layer conductance of one layer and pass in one launch (per-lane math in element_math.h).
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

// One block per (group of terms sharing sums, channel): for each of the group's terms in
// order, each thread adds its lane's v = grad * (upper - lower) into map and sums them in
// double; the block reduction combines the lanes and one thread adds the term's total to
// sums[c]. No atomics: every sum is formed in one fixed order, and a thread always owns the
// same map lanes, so consecutive terms need no further synchronization.
__global__ void conductance_accumulate_kernel(int64_t channels, int64_t spatial,
                                              const ConductanceTermPointers* __restrict__ terms,
                                              const int64_t* __restrict__ group_start, int64_t groups) {
  __shared__ double shared[kMaxReductionThreads];
  for (int64_t g = blockIdx.y; g < groups; g += gridDim.y)
    for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
      const int64_t offset = c * spatial;
      for (int64_t t = group_start[g]; t < group_start[g + 1]; ++t) {
        const ConductanceTermPointers term = terms[t];
        const double partial = cuda_math::conductance_partial_sum(term.grad + offset, term.upper + offset,
                                                                  term.lower + offset,
                                                                  term.map ? term.map + offset : nullptr, spatial,
                                                                  threadIdx.x, blockDim.x);
        const double sum = block_reduce(partial, shared, SumOp{});
        if (threadIdx.x == 0) term.sums[c] += static_cast<float>(sum);
      }
    }
}

}  // namespace

void interpolate(cudaStream_t stream, int64_t count, const float* baseline, const float* x, float alpha, float* y) {
  if (count <= 0) return;
  interpolate_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, baseline, x, alpha, y);
  VETO_CUDA_CHECK_LAUNCH("interpolate_kernel");
}

void conductance_accumulate(cudaStream_t stream, int64_t channels, int64_t spatial,
                            const ConductanceTermPointers* terms, const int64_t* group_start, int64_t groups) {
  if (channels <= 0 || spatial <= 0 || groups <= 0) return;
  constexpr int64_t kMaxBlocksX = int64_t(1) << 20, kMaxBlocksY = 65535;
  const dim3 blocks(static_cast<unsigned int>(channels < kMaxBlocksX ? channels : kMaxBlocksX),
                    static_cast<unsigned int>(groups < kMaxBlocksY ? groups : kMaxBlocksY));
  conductance_accumulate_kernel<<<blocks, reduction_threads_for(spatial), 0, stream>>>(channels, spatial, terms,
                                                                                       group_start, groups);
  VETO_CUDA_CHECK_LAUNCH("conductance_accumulate_kernel");
}

}  // namespace veto::cuda
