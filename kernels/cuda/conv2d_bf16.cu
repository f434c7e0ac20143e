// The bf16 convolution's conversions (conv2d.cpp, Precision::BF16): the FP32 NCHW input into
// bfloat16 NHWC (with the asymmetric part of the padding, as conv2d_pad_input), cuDNN's bf16
// NHWC output back into the FP32 NCHW activation with the epilogue (bias, residual, ReLU), and
// for the data gradient the bf16 NHWC gradient w.r.t. the padded input cropped into FP32 dx.
// One thread per FP32 NCHW element: the FP32 side is read or written coalesced.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void conv2d_to_bf16_nhwc_kernel(cuda_math::PadGeometry g, int64_t count, int64_t channels,
                                           const float* __restrict__ x, uint16_t* __restrict__ out) {
  const int64_t spatial = g.out_h * g.out_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t source = cuda_math::pad_source_index(g, i);
    out[cuda_math::nhwc_index_of(i, channels, spatial)] = cuda_math::bf16_bits_of(source >= 0 ? x[source] : 0.0f);
  }
}

// No __restrict__ on residual/y: the residual may be y itself.
__global__ void conv2d_epilogue_from_bf16_nhwc_kernel(int64_t count, int64_t channels, int64_t spatial,
                                                      const uint16_t* __restrict__ conv, const float* __restrict__ bias,
                                                      const float* residual, bool relu, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = cuda_math::float_of_bf16_bits(conv[cuda_math::nhwc_index_of(i, channels, spatial)]);
    const float b = bias ? bias[cuda_math::channel_of(i, channels, spatial)] : 0.0f;
    const float r = residual ? residual[i] : 0.0f;
    y[i] = cuda_math::conv2d_epilogue_value(v, b, r, relu);
  }
}

__global__ void conv2d_crop_from_bf16_nhwc_kernel(cuda_math::PadGeometry g, int64_t count, int64_t channels,
                                                  const uint16_t* __restrict__ padded_dx, float* __restrict__ dx,
                                                  bool accumulate) {
  const int64_t padded_spatial = g.out_h * g.out_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = cuda_math::nhwc_index_of(cuda_math::pad_target_index(g, i), channels, padded_spatial);
    cuda_math::store_gradient(dx + i, cuda_math::float_of_bf16_bits(padded_dx[at]), accumulate);
  }
}

}  // namespace

void conv2d_to_bf16_nhwc(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t batch,
                         int64_t channels, const float* x, uint16_t* out) {
  const int64_t count = batch * channels * geometry.out_h * geometry.out_w;
  if (count <= 0) return;
  conv2d_to_bf16_nhwc_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, channels, x, out);
  VETO_CUDA_CHECK_LAUNCH("conv2d_to_bf16_nhwc_kernel");
}

void conv2d_epilogue_from_bf16_nhwc(cudaStream_t stream, int64_t count, int64_t channels, int64_t spatial,
                                    const uint16_t* conv, const float* bias, const float* residual, bool relu,
                                    float* y) {
  if (count <= 0) return;
  conv2d_epilogue_from_bf16_nhwc_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(
      count, channels, spatial, conv, bias, residual, relu, y);
  VETO_CUDA_CHECK_LAUNCH("conv2d_epilogue_from_bf16_nhwc_kernel");
}

void conv2d_crop_from_bf16_nhwc(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t batch,
                                int64_t channels, const uint16_t* padded_dx, float* dx, bool accumulate) {
  const int64_t count = batch * channels * geometry.in_h * geometry.in_w;
  if (count <= 0) return;
  conv2d_crop_from_bf16_nhwc_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(geometry, count, channels,
                                                                                      padded_dx, dx, accumulate);
  VETO_CUDA_CHECK_LAUNCH("conv2d_crop_from_bf16_nhwc_kernel");
}

}  // namespace veto::cuda
