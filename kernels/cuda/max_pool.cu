// Max pool with explicit padding: one thread per output element; the window math is
// max_pool_value in element_math.h. The backward routes each window's gradient to its first
// maximum, as a gather over input cells (max_pool_gradient_value).
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

// One thread per input cell: for each window containing the cell, it takes the window's dy
// when the cell is that window's first maximum (the reference's rule). A gather instead of a
// scatter with atomics: deterministic, at the price of rescanning each window (at most 4
// windows of 9 cells for InceptionV3's 3x3 stride-2 pools).
__global__ void max_pool_backward_data_kernel(cuda_math::AvgPoolGeometry g, int64_t count,
                                              const float* __restrict__ x, const float* __restrict__ dy,
                                              float* __restrict__ dx, bool accumulate) {
  const int64_t in_plane = g.in_h * g.in_w;
  for (int64_t cell = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; cell < count;
       cell += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = cell / in_plane, rem = cell - plane * in_plane;
    const float gradient = cuda_math::max_pool_gradient_value(g, x + plane * in_plane, dy + plane * g.out_h * g.out_w,
                                                              rem / g.in_w, rem % g.in_w);
    cuda_math::store_gradient(dx + cell, gradient, accumulate);
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

void max_pool_backward_data(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                            const float* x, const float* dy, float* dx, bool accumulate) {
  const int64_t count = planes * geometry.in_h * geometry.in_w;
  if (count <= 0) return;
  max_pool_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, dy, dx,
                                                                                  accumulate);
  VETO_CUDA_CHECK_LAUNCH("max_pool_backward_data_kernel");
}

}  // namespace veto::cuda
