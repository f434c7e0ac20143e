// Explicit zero padding of a convolution's input, for the asymmetric part of its padding that
// cuDNN (symmetric padding only) cannot express. One thread per padded element. The backward
// crops the gradient w.r.t. the padded input back to the input: one thread per input element.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void conv2d_pad_input_kernel(cuda_math::PadGeometry g, int64_t count, const float* __restrict__ x,
                                        float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::pad_source_index(g, i);
    y[i] = source >= 0 ? x[source] : 0.0f;
  }
}

// Backward of the padding: one thread per input element reads its cell of the padded gradient.
__global__ void conv2d_pad_input_backward_data_kernel(cuda_math::PadGeometry g, int64_t count,
                                                      const float* __restrict__ padded_dx, float* __restrict__ dx,
                                                      bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    cuda_math::store_gradient(dx + i, padded_dx[cuda_math::pad_target_index(g, i)], accumulate);
}

}  // namespace

void conv2d_pad_input(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t planes, const float* x,
                      float* y) {
  const int64_t count = planes * geometry.out_h * geometry.out_w;
  if (count <= 0) return;
  conv2d_pad_input_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, x, y);
  VETO_CUDA_CHECK_LAUNCH("conv2d_pad_input_kernel");
}

void conv2d_pad_input_backward_data(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t planes,
                                    const float* padded_dx, float* dx, bool accumulate) {
  const int64_t count = planes * geometry.in_h * geometry.in_w;
  if (count <= 0) return;
  conv2d_pad_input_backward_data_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count,
                                                                                          padded_dx, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("conv2d_pad_input_backward_data_kernel");
}

}  // namespace veto::cuda
