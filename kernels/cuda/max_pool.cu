// Max pool with explicit padding: one thread per output element; the window math is
// max_pool_value in element_math.h.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void max_pool_forward_kernel(cuda_math::AvgPoolGeometry g, int64_t count, const float* __restrict__ x,
                                        float* __restrict__ y) {
  const int64_t out_plane = g.out_h * g.out_w;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count;
       o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = o / out_plane, rem = o - plane * out_plane;
    y[o] = cuda_math::max_pool_value(g, x + plane * g.in_h * g.in_w, rem / g.out_w, rem % g.out_w);
  }
}

}  // namespace

void max_pool_forward(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                      const float* x, float* y) {
  const int64_t count = planes * geometry.out_h * geometry.out_w;
  if (count <= 0) return;
  max_pool_forward_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, y);
  VETO_CUDA_CHECK_LAUNCH("max_pool_forward_kernel");
}

}  // namespace veto::cuda
