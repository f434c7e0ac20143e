// A mutant's sparse delta on a CUDA convolution (Conv2dKernel::set_filters): the changed output
// filters' folded values and their indices arrive in one upload, and one kernel writes them
// into the weights in place (OIHW FP32, or KRSC bfloat16 in bf16 mode); the revert is the same
// call with the original filters. One thread per value.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void conv2d_set_filters_kernel(cuda_math::FilterLayout layout, int64_t count, int64_t filter_size,
                                          const int64_t* __restrict__ filters, const float* __restrict__ values,
                                          void* __restrict__ weights) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = cuda_math::filter_weight_index(layout, filters[i / filter_size], i % filter_size);
    if (layout.krsc)
      static_cast<uint16_t*>(weights)[at] = cuda_math::bf16_bits_of(values[i]);
    else
      static_cast<float*>(weights)[at] = values[i];
  }
}

}  // namespace

void conv2d_set_filters(cudaStream_t stream, const cuda_math::FilterLayout& layout, int64_t filter_count,
                        const int64_t* filters, const float* values, void* weights) {
  const int64_t filter_size = layout.in_per_group * layout.kernel_spatial, count = filter_count * filter_size;
  if (count <= 0) return;
  conv2d_set_filters_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(layout, count, filter_size, filters,
                                                                              values, weights);
  VETO_CUDA_CHECK_LAUNCH("conv2d_set_filters_kernel");
}

}  // namespace veto::cuda
