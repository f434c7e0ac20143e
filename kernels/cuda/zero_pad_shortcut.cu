// ResNet "option A" shortcut: one thread per output element, which reads its strided source
// element or writes 0 for a padded channel (index mapping in element_math.h).
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

}  // namespace

void zero_pad_shortcut_forward(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                               int64_t batch, const float* x, float* y) {
  const int64_t count = batch * geometry.out_channels * geometry.out_h * geometry.out_w;
  if (count <= 0) return;
  zero_pad_shortcut_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, y);
  VETO_CUDA_CHECK_LAUNCH("zero_pad_shortcut_forward_kernel");
}

}  // namespace veto::cuda
