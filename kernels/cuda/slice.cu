// Slice: one thread per output element, which reads its strided source element (index mapping
// in element_math.h). The backward is the inverse gather: one thread per input element, which
// reads the one output gradient it fed or writes 0, so no atomics.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void slice_forward_kernel(cuda_math::SliceGeometry g, int64_t count, const float* __restrict__ x,
                                     float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = x[cuda_math::slice_source_index(g, i)];
}

__global__ void slice_backward_data_kernel(cuda_math::SliceGeometry g, int64_t count, const float* __restrict__ dy,
                                           float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::slice_gradient_source_index(g, i);
    cuda_math::store_gradient(dx + i, source >= 0 ? dy[source] : 0.0f, accumulate);
  }
}

}  // namespace

void slice_forward(cudaStream_t stream, const cuda_math::SliceGeometry& geometry, int64_t batch, const float* x,
                   float* y) {
  const int64_t count = batch * geometry.out[0] * geometry.out[1] * geometry.out[2];
  if (count <= 0) return;
  slice_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, y);
  VETO_CUDA_CHECK_LAUNCH("slice_forward_kernel");
}

void slice_backward_data(cudaStream_t stream, const cuda_math::SliceGeometry& geometry, int64_t batch,
                         const float* dy, float* dx, bool accumulate) {
  const int64_t count = batch * geometry.in[0] * geometry.in[1] * geometry.in[2];
  if (count <= 0) return;
  slice_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, dy, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("slice_backward_data_kernel");
}

}  // namespace veto::cuda
