// ResNet "option A" shortcut: one thread per output element, which reads its strided source
// element or writes 0 for a padded channel (index mapping in element_math.h). The backward is
// the inverse gather: one thread per input element.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void zero_pad_shortcut_forward_kernel(cuda_math::ZeroPadShortcutGeometry g, int64_t count,
                                                 const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::zero_pad_shortcut_source_index(g, i);
    y[i] = source >= 0 ? x[source] : 0.0f;
  }
}

// A gather over dx: each input pixel reads the one output gradient it fed, or gets 0.
__global__ void zero_pad_shortcut_backward_data_kernel(cuda_math::ZeroPadShortcutGeometry g, int64_t count,
                                                       const float* __restrict__ dy, float* __restrict__ dx,
                                                       bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::zero_pad_shortcut_gradient_source_index(g, i);
    cuda_math::store_gradient(dx + i, source >= 0 ? dy[source] : 0.0f, accumulate);
  }
}

}  // namespace

void zero_pad_shortcut_forward(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                               int64_t batch, const float* x, float* y) {
  const int64_t count = batch * geometry.out_channels * geometry.out_h * geometry.out_w;
  if (count <= 0) return;
  zero_pad_shortcut_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, y);
  VETO_CUDA_CHECK_LAUNCH("zero_pad_shortcut_forward_kernel");
}

void zero_pad_shortcut_backward_data(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                                     int64_t batch, const float* dy, float* dx, bool accumulate) {
  const int64_t count = batch * geometry.channels * geometry.in_h * geometry.in_w;
  if (count <= 0) return;
  zero_pad_shortcut_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, dy, dx,
                                                                                           accumulate);
  VETO_CUDA_CHECK_LAUNCH("zero_pad_shortcut_backward_data_kernel");
}

}  // namespace veto::cuda
