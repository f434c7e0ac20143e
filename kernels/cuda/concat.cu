// Concatenation's data gradient when it accumulates: each input's gradient is its channel slice
// of dy, added into dx by one thread per element (index mapping in element_math.h). The
// forward and the overwriting backward are strided copies (backend_cuda.cpp), no kernel.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void concat_backward_data_accumulate_kernel(cuda_math::ConcatGeometry g, int64_t count,
                                                       const float* __restrict__ dy, float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, dy[cuda_math::concat_gradient_source_index(g, i)], true);
}

}  // namespace

void concat_backward_data_accumulate(cudaStream_t stream, const cuda_math::ConcatGeometry& geometry, int64_t batch,
                                     const float* dy, float* dx) {
  const int64_t count = batch * geometry.part_channels * geometry.spatial;
  if (count <= 0) return;
  concat_backward_data_accumulate_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, dy, dx);
  VETO_CUDA_CHECK_LAUNCH("concat_backward_data_accumulate_kernel");
}

}  // namespace veto::cuda
