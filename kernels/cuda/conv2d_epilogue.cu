// What follows a cuDNN convolution, in one pass over y: y = relu?(y + bias[c] + residual).
// One simple kernel for every fusion instead of cudnnConvolutionBiasActivationForward, whose
// valid combinations depend on the algorithm (ReLU only with IMPLICIT_PRECOMP_GEMM).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

// No __restrict__ on residual/y: the residual may be y itself.
__global__ void conv2d_epilogue_kernel(int64_t count, int64_t channels, int64_t spatial,
                                       const float* __restrict__ bias, const float* residual, bool relu, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float b = bias ? bias[cuda_math::channel_of(i, channels, spatial)] : 0.0f;
    const float r = residual ? residual[i] : 0.0f;
    y[i] = cuda_math::conv2d_epilogue_value(y[i], b, r, relu);
  }
}

}  // namespace

void conv2d_epilogue(cudaStream_t stream, int64_t count, int64_t channels, int64_t spatial, const float* bias,
                     const float* residual, bool relu, float* y) {
  if (count <= 0 || (!bias && !residual && !relu)) return;
  conv2d_epilogue_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, channels, spatial, bias, residual,
                                                                           relu, y);
  VETO_CUDA_CHECK_LAUNCH("conv2d_epilogue_kernel");
}

}  // namespace veto::cuda
