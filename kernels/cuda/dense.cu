// Fully connected layer: one cuBLAS GEMM for x * w^T, then one kernel adding the bias. The data
// gradient is one GEMM, dy * w (operands in element_math.h's dense_backward_data_gemm). FP32
// matrices in every precision: the compute type alone lets cuBLAS round the inputs to TF32 or
// bfloat16 on tensor cores (FP32 accumulation), with no conversion pass of ours.
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

namespace veto::cuda {
namespace {

__global__ void dense_add_bias_kernel(int64_t count, int64_t out_features, const float* __restrict__ bias,
                                      float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cuda_math::conv2d_epilogue_value(y[i], bias[i % out_features], 0.0f, false);
}

// y = a * b (+ beta * y), column-major, FP32 matrices; `compute` sets the precision.
void gemm(cublasHandle_t cublas, cublasComputeType_t compute, bool transpose_a, bool transpose_b, int m, int n, int k,
          const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const float one = 1.0f;
  VETO_CUBLAS_CHECK(cublasGemmEx(cublas, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &one, a, CUDA_R_32F, lda, b,
                                 CUDA_R_32F, ldb, &beta, c, CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void dense_forward(cublasHandle_t cublas, cublasComputeType_t compute, cudaStream_t stream, int64_t batch,
                   int64_t in_features, int64_t out_features, const float* x, const float* w, const float* bias,
                   float* y) {
  VETO_CHECK(batch > 0 && in_features > 0 && out_features > 0, "CUDA dense: batch ", batch, ", in_features ",
             in_features, " and out_features ", out_features, " must all be positive");
  VETO_CHECK(batch <= INT_MAX && in_features <= INT_MAX && out_features <= INT_MAX,
             "CUDA dense: dimensions exceed cuBLAS's int range (batch ", batch, ", in ", in_features, ", out ",
             out_features, ")");
  // Row-major y (batch, out) is column-major y^T (out, batch) = w (out, in) * x^T (in, batch).
  // Row-major w (out, in) read column-major is w^T (in, out): transpose it (OP_T), lda = in.
  // Row-major x (batch, in) read column-major is x^T (in, batch): as is (OP_N), ldb = in.
  const int m = static_cast<int>(out_features), n = static_cast<int>(batch), k = static_cast<int>(in_features);
  gemm(cublas, compute, true, false, m, n, k, w, k, x, k, 0.0f, y, m);
  if (!bias) return;
  const int64_t count = batch * out_features;
  dense_add_bias_kernel<<<grid_for(count), kThreadsPerBlock, 0, stream>>>(count, out_features, bias, y);
  VETO_CUDA_CHECK_LAUNCH("dense_add_bias_kernel");
}

void dense_backward_data(cublasHandle_t cublas, cublasComputeType_t compute, int64_t batch, int64_t in_features,
                         int64_t out_features, const float* dy, const float* w, float* dx, bool accumulate) {
  VETO_CHECK(batch > 0 && in_features > 0 && out_features > 0, "CUDA dense backward: batch ", batch,
             ", in_features ", in_features, " and out_features ", out_features, " must all be positive");
  VETO_CHECK(batch <= INT_MAX && in_features <= INT_MAX && out_features <= INT_MAX,
             "CUDA dense backward: dimensions exceed cuBLAS's int range (batch ", batch, ", in ", in_features,
             ", out ", out_features, ")");
  const cuda_math::GemmCall call = cuda_math::dense_backward_data_gemm(batch, in_features, out_features);
  // beta = 1 adds into dx; with beta = 0 cuBLAS does not read dx (it may hold anything).
  gemm(cublas, compute, call.transpose_a, call.transpose_b, static_cast<int>(call.m), static_cast<int>(call.n),
       static_cast<int>(call.k), w, static_cast<int>(call.lda), dy, static_cast<int>(call.ldb),
       accumulate ? 1.0f : 0.0f, dx, static_cast<int>(call.ldc));
}

}  // namespace veto::cuda
