// Launchers of the custom CUDA kernels, one .cu per op (named after it). Every launcher queues
// its kernel on `stream` and returns at once; pointers are device pointers. The per-element
// math is in element_math.h (tested on the host); the .cu files only map threads to elements.
//
// The <op>_backward_data launchers follow Backend's contract: dx gets the data gradient, added
// to what dx holds when `accumulate` is set; dx never overlaps the other arguments.
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
// dx = dy * gamma[c] / sqrt(var[c] + eps).
void batch_norm_backward_data(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                              const float* dy, const float* gamma, const float* var, float eps, float* dx,
                              bool accumulate);

// relu.cu
void relu_forward(cudaStream_t stream, int64_t count, const float* x, float* y);
// dx = dy where the forward output y > 0, else 0.
void relu_backward_data(cudaStream_t stream, int64_t count, const float* y, const float* dy, float* dx,
                        bool accumulate);

// add.cu: y = a + b, then ReLU when relu is set.
void add_forward(cudaStream_t stream, int64_t count, const float* a, const float* b, float* y, bool relu);
// dx = dy (either input).
void add_backward_data(cudaStream_t stream, int64_t count, const float* dy, float* dx, bool accumulate);

// zero_pad_shortcut.cu: `batch` samples of the geometry's shapes.
void zero_pad_shortcut_forward(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                               int64_t batch, const float* x, float* y);
void zero_pad_shortcut_backward_data(cudaStream_t stream, const cuda_math::ZeroPadShortcutGeometry& geometry,
                                     int64_t batch, const float* dy, float* dx, bool accumulate);

// clip.cu: y = min(max(x, lo), hi).
void clip_forward(cudaStream_t stream, int64_t count, float lo, float hi, const float* x, float* y);
// dx = dy where lo < y < hi (y the forward output), else 0.
void clip_backward_data(cudaStream_t stream, int64_t count, float lo, float hi, const float* y, const float* dy,
                        float* dx, bool accumulate);

// slice.cu: `batch` samples of the geometry's shapes.
void slice_forward(cudaStream_t stream, const cuda_math::SliceGeometry& geometry, int64_t batch, const float* x,
                   float* y);
void slice_backward_data(cudaStream_t stream, const cuda_math::SliceGeometry& geometry, int64_t batch,
                         const float* dy, float* dx, bool accumulate);

// pad.cu: `batch` samples of the geometry's shapes; the padding cells get `value`.
void pad_forward(cudaStream_t stream, const cuda_math::PadOpGeometry& geometry, int64_t batch, float value,
                 const float* x, float* y);
void pad_backward_data(cudaStream_t stream, const cuda_math::PadOpGeometry& geometry, int64_t batch,
                       const float* dy, float* dx, bool accumulate);

// global_avg_pool.cu: the mean of each of `planes` contiguous rows of `spatial` values.
void global_avg_pool_forward(cudaStream_t stream, int64_t planes, int64_t spatial, const float* x, float* y);
void global_avg_pool_backward_data(cudaStream_t stream, int64_t planes, int64_t spatial, const float* dy, float* dx,
                                   bool accumulate);

// avg_pool.cu: `planes` = batch * channels planes of the geometry's shapes.
void avg_pool_forward(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                      const float* x, float* y);
void avg_pool_backward_data(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                            const float* dy, float* dx, bool accumulate);

// max_pool.cu: `planes` = batch * channels planes of the geometry's shapes.
void max_pool_forward(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                      const float* x, float* y);
// x is the forward input (it decides which cell of each window gets the gradient).
void max_pool_backward_data(cudaStream_t stream, const cuda_math::AvgPoolGeometry& geometry, int64_t planes,
                            const float* x, const float* dy, float* dx, bool accumulate);

// concat.cu: dx += one input's channel slice of dy, for `batch` samples (the overwriting
// backward is a strided copy and needs no kernel).
void concat_backward_data_accumulate(cudaStream_t stream, const cuda_math::ConcatGeometry& geometry, int64_t batch,
                                     const float* dy, float* dx);

// channel_affine.cu: y[:, c] = x[:, c] * scale[c] + shift[c] over NCHW.
void channel_affine_forward(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                            const cuda_math::ChannelAffineConstants& constants, const float* x, float* y);
// dx[:, c] = dy[:, c] * scale[c] (shift is unused).
void channel_affine_backward_data(cudaStream_t stream, int64_t batch, int64_t channels, int64_t spatial,
                                  const cuda_math::ChannelAffineConstants& constants, const float* dy, float* dx,
                                  bool accumulate);

// softmax.cu: softmax of each of `rows` rows of `cols` values.
void softmax_forward(cudaStream_t stream, int64_t rows, int64_t cols, const float* x, float* y);
// dx = y * (dy - sum(dy * y)) per row, y the forward output.
void softmax_backward_data(cudaStream_t stream, int64_t rows, int64_t cols, const float* y, const float* dy,
                           float* dx, bool accumulate);

// conv2d_epilogue.cu: in place on y (NCHW, `count` elements),
// y = relu?(y + bias[c] + residual); bias and residual may be null.
void conv2d_epilogue(cudaStream_t stream, int64_t count, int64_t channels, int64_t spatial, const float* bias,
                     const float* residual, bool relu, float* y);

// conv2d_pad_input.cu: zero-padded copy of `planes` input planes (see PadGeometry).
void conv2d_pad_input(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t planes,
                      const float* x, float* y);
// Its backward, a crop: dx (`planes` in_h x in_w planes) gets the input's cells of padded_dx,
// the gradient w.r.t. the padded copy.
void conv2d_pad_input_backward_data(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t planes,
                                    const float* padded_dx, float* dx, bool accumulate);

// conv2d_bf16.cu (bf16 convolutions): the FP32 NCHW input, padded as `geometry` says (no
// padding: out == in), into bfloat16 NHWC `out`; cuDNN's bf16 NHWC output `conv` through the
// epilogue into FP32 NCHW y (as conv2d_epilogue; residual may be y); the bf16 NHWC gradient
// w.r.t. the padded input cropped into FP32 NCHW dx.
void conv2d_to_bf16_nhwc(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t batch,
                         int64_t channels, const float* x, uint16_t* out);
void conv2d_epilogue_from_bf16_nhwc(cudaStream_t stream, int64_t count, int64_t channels, int64_t spatial,
                                    const uint16_t* conv, const float* bias, const float* residual, bool relu,
                                    float* y);
void conv2d_crop_from_bf16_nhwc(cudaStream_t stream, const cuda_math::PadGeometry& geometry, int64_t batch,
                                int64_t channels, const uint16_t* padded_dx, float* dx, bool accumulate);

// conv2d_set_filters.cu: values (filter_count x filter_size, OIHW within a filter) into the
// listed output filters of `weights` (laid out as `layout` says); every other value stays.
void conv2d_set_filters(cudaStream_t stream, const cuda_math::FilterLayout& layout, int64_t filter_count,
                        const int64_t* filters, const float* values, void* weights);

// dense.cu: y (batch, out) = x (batch, in) * w^T + bias, w (out, in); one cuBLAS GEMM (FP32
// matrices, `compute` the precision: CUBLAS_COMPUTE_32F, _FAST_TF32 or _FAST_16BF) on the
// handle's stream plus a bias kernel on `stream` (the same stream). bias may be null.
void dense_forward(cublasHandle_t cublas, cublasComputeType_t compute, cudaStream_t stream, int64_t batch,
                   int64_t in_features, int64_t out_features, const float* x, const float* w, const float* bias,
                   float* y);
// dx (batch, in) = dy (batch, out) * w (out, in): one GEMM on the handle's stream.
void dense_backward_data(cublasHandle_t cublas, cublasComputeType_t compute, int64_t batch, int64_t in_features,
                         int64_t out_features, const float* dy, const float* w, float* dx, bool accumulate);

// conductance.cu: y = baseline + alpha * (x - baseline) over `count` values.
void interpolate(cudaStream_t stream, int64_t count, const float* baseline, const float* x, float alpha, float* y);
// Conductance intervals of a (channels, spatial) layer: for each term v = grad * (upper -
// lower); sums[c] += sum_s v[c, s], map += v when map is not null. `terms` (device memory) is
// ordered by group, a group being the terms that share sums (and map), applied in order;
// group g is terms [group_start[g], group_start[g + 1]).
struct ConductanceTermPointers {
  const float* grad;
  const float* upper;
  const float* lower;
  float* sums;
  float* map;
};
void conductance_accumulate(cudaStream_t stream, int64_t channels, int64_t spatial,
                            const ConductanceTermPointers* terms, const int64_t* group_start, int64_t groups);

}  // namespace veto::cuda
