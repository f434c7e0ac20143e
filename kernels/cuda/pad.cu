// Constant padding: one thread per output element, which reads its source element or writes
// the pad value (index mapping in element_math.h). The backward is the crop as a gather: one
// thread per input element, which reads the output gradient it was copied to.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void pad_forward_kernel(cuda_math::PadOpGeometry g, int64_t count, float value,
                                   const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::pad_op_source_index(g, i);
    y[i] = source >= 0 ? x[source] : value;
  }
}

__global__ void pad_backward_data_kernel(cuda_math::PadOpGeometry g, int64_t count, const float* __restrict__ dy,
                                         float* __restrict__ dx, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, dy[cuda_math::pad_op_gradient_source_index(g, i)], accumulate);
}

}  // namespace

void pad_forward(cudaStream_t stream, const cuda_math::PadOpGeometry& geometry, int64_t batch, float value,
                 const float* x, float* y) {
  const int64_t count = batch * geometry.out[0] * geometry.out[1] * geometry.out[2];
  if (count <= 0) return;
  pad_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, value, x, y);
  VETO_CUDA_CHECK_LAUNCH("pad_forward_kernel");
}

void pad_backward_data(cudaStream_t stream, const cuda_math::PadOpGeometry& geometry, int64_t batch,
                       const float* dy, float* dx, bool accumulate) {
  const int64_t count = batch * geometry.in[0] * geometry.in[1] * geometry.in[2];
  if (count <= 0) return;
  pad_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, dy, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("pad_backward_data_kernel");
}

}  // namespace veto::cuda
