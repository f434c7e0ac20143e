// Launchers of the custom CUDA kernels, one .cu per op (named after it). Every launcher queues
// its kernel on `stream` and returns at once; pointers are device pointers. The per-element
// math is in element_math.h (tested on the host); the .cu files only map threads to elements.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/element_math.h"

namespace veto::cuda {

// Threads per block of the elementwise kernels, and the grid for `count` elements with a
// grid-stride loop (capped: beyond that each thread takes several elements).
constexpr int kThreadsPerBlock = 256;
inline unsigned int grid_for(int64_t count) {
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  const int64_t blocks = (count + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// Threads per block of the row reductions (softmax, global average pool): a power of two from
// 32 to 256, no more than the row needs.
inline int reduction_threads_for(int64_t row_length) {
  int threads = 32;
  while (threads < 256 && threads < row_length) threads <<= 1;
  return threads;
}

// batch_norm.cu: inference batch norm over NCHW with spatial = H*W.
void batch_norm_forward(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial, const float* x,
                        const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                        float* y);

// relu.cu
void relu_forward(cudaStream_t stream, int64_t count, const float* x, float* y);

// add.cu: y = a + b, then ReLU when relu is set.
void add_forward(cudaStream_t stream, int64_t count, const float* a, const float* b, float* y, bool relu);

// zero_pad_shortcut.cu: `batch` samples of the geometry's shapes.
void zero_pad_shortcut_forward(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                               int64_t batch, const float* x, float* y);

// global_avg_pool.cu: the mean of each of `planes` contiguous rows of `spatial` values.
void global_avg_pool_forward(cudaStream_t stream, int64_t planes, int64_t spatial, const float* x, float* y);

// avg_pool.cu: `planes` = batch * channels planes of the geometry's shapes.
void avg_pool_forward(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                      const float* x, float* y);

// max_pool.cu: `planes` = batch * channels planes of the geometry's shapes.
void max_pool_forward(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                      const float* x, float* y);

// channel_affine.cu: y[:, c] = x[:, c] * scale[c] + shift[c] over NCHW.
void channel_affine_forward(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                            const cuda_math::ChannelAffineConstants& constants, const float* x, float* y);

// softmax.cu: softmax of each of `rows` rows of `cols` values.
void softmax_forward(cudaStream_t stream, int64_t rows, int64_t cols, const float* x, float* y);

// conv2d_epilogue.cu: in place on y (NCHW, `count` elements),
// y = relu?(y + bias[c] + residual); bias and residual may be null.
void conv2d_epilogue(cudaStream_t stream, int64_t count, int64_t channels, int64_t spatial, const float* bias,
                     const float* residual, bool relu, float* y);

// conv2d_pad_input.cu: zero-padded copy of `planes` input planes (see PadGeometry).
void conv2d_pad_input(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t planes,
                      const float* x, float* y);

// dense.cu: y (batch, out) = x (batch, in) * w^T + bias, w (out, in); cuBLAS sgemm on the
// handle's stream plus a bias kernel on `stream` (the same stream). bias may be null.
void dense_forward(cublasHandle_t cublas, cudaStream_t stream, int64_t batch, int64_t in_features,
                   int64_t out_features, const float* x, const float* w, const float* bias, float* y);

}  // namespace veto::cuda
