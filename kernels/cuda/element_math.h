// The per-element math of every custom CUDA kernel, written once as __host__ __device__
// functions. The .cu files only add the launch (which thread computes which element); the
// math itself runs on the host in tests/test_cuda_host_kernels.cpp against kernels/reference,
// so it is checked even on machines without a GPU (DESIGN.md, correctness ladder point 5).
//
// Plain C++: no CUDA headers, so g++ can compile this for veto_tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VETO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VETO_HOST_DEVICE inline
#endif

namespace veto::cuda_math {

// std::min/std::max are not device functions without --expt-relaxed-constexpr.
VETO_HOST_DEVICE int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
VETO_HOST_DEVICE int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// ReLU as the reference writes it (NaN maps to 0, like `x > 0 ? x : 0`).
VETO_HOST_DEVICE float relu_value(float x) { return x > 0.0f ? x : 0.0f; }

// Channel of a flat NCHW index, given spatial = H*W.
VETO_HOST_DEVICE int64_t channel_of(int64_t index, int64_t channels, int64_t spatial) {
  return (index / spatial) % channels;
}

// Every backward kernel ends here: `accumulate` adds the gradient to what dx holds (a tensor
// read by several nodes sums their gradients), else overwrites it without reading it (dx may
// hold garbage then). old + value as the reference backend adds; where value is a product the
// compiler may fuse the two into one FMA (nvcc does by default), one rounding fewer.
VETO_HOST_DEVICE void store_gradient(float* dx, float value, bool accumulate) {
  *dx = accumulate ? *dx + value : value;
}

// --- relu backward ------------------------------------------------------------------------------
// The gradient passes where the output is positive (PyTorch's subgradient: 0 at 0; NaN y blocks).
VETO_HOST_DEVICE float relu_backward_value(float y, float dy) { return y > 0.0f ? dy : 0.0f; }

// --- add ------------------------------------------------------------------------------
VETO_HOST_DEVICE float add_value(float a, float b, bool relu) {
  const float v = a + b;
  return relu ? relu_value(v) : v;
}

// --- batch norm (inference) ----------------------------------------------------------------
// y = (x - mean) / sqrt(var + eps) * gamma + beta, in the reference's order of operations.
VETO_HOST_DEVICE float batch_norm_value(float x, float gamma, float beta, float mean, float var, float eps) {
  const float inv_std = 1.0f / sqrtf(var + eps);
  return (x - mean) * inv_std * gamma + beta;
}

// dx = dy * batch_norm_gradient_scale: with inference statistics the op is affine in x. The
// reference's order of operations (1 / sqrt, then times gamma).
VETO_HOST_DEVICE float batch_norm_gradient_scale(float gamma, float var, float eps) {
  return 1.0f / sqrtf(var + eps) * gamma;
}

// --- conv2d epilogue ------------------------------------------------------------------------
// What follows the cuDNN convolution: y = relu?(conv + bias + residual). Absent terms are 0.
VETO_HOST_DEVICE float conv2d_epilogue_value(float conv, float bias, float residual, bool relu) {
  const float v = conv + bias + residual;
  return relu ? relu_value(v) : v;
}

// --- conv2d explicit input padding -------------------------------------------------------------
// cuDNN only pads symmetrically. For asymmetric padding the convolution runs with the smaller
// side's padding inside cuDNN and the remainder is added here, as an explicitly zero-padded copy
// of the input. Each (n, c) plane of in_h x in_w becomes out_h x out_w, the input placed at
// (pad_top, pad_left).
struct PadGeometry {
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t pad_top = 0, pad_left = 0;
};

// Flat input index feeding flat output index `out_index` (planes are contiguous), or -1 when
// the output element is padding.
VETO_HOST_DEVICE int64_t pad_source_index(const PadGeometry& g, int64_t out_index) {
  const int64_t plane = out_index / (g.out_h * g.out_w);
  const int64_t rem = out_index - plane * g.out_h * g.out_w;
  const int64_t h = rem / g.out_w - g.pad_top;
  const int64_t w = rem % g.out_w - g.pad_left;
  if (h < 0 || h >= g.in_h || w < 0 || w >= g.in_w) return -1;
  return (plane * g.in_h + h) * g.in_w + w;
}

// The backward of the padding, a crop: the flat padded index that input index `in_index` was
// copied to. cuDNN's data gradient is taken w.r.t. the padded input; the cells that came from
// the input are its gradient, the padding's are dropped.
VETO_HOST_DEVICE int64_t pad_target_index(const PadGeometry& g, int64_t in_index) {
  const int64_t plane = in_index / (g.in_h * g.in_w);
  const int64_t rem = in_index - plane * g.in_h * g.in_w;
  const int64_t h = rem / g.in_w + g.pad_top;
  const int64_t w = rem % g.in_w + g.pad_left;
  return (plane * g.out_h + h) * g.out_w + w;
}

// --- bf16 convolutions ----------------------------------------------------------------------
// In bf16 mode a convolution's input and weights are rounded to bfloat16 and laid out NHWC
// (KRSC for the weights), the layout cuDNN's tensor-core kernels read without transposing;
// its bf16 NHWC output is read back into the FP32 NCHW activation by the epilogue. bfloat16 is
// held as its 16 bits (uint16_t): the upper half of the FP32 pattern.

// Round to nearest, ties to even (__float2bfloat16_rn); NaN stays a (quiet) NaN, infinities
// stay infinite, and values that round past the largest finite bfloat16 become infinite.
VETO_HOST_DEVICE uint16_t bf16_bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

VETO_HOST_DEVICE float float_of_bf16_bits(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

// Flat NHWC index of the element at flat NCHW index `nchw_index` (spatial = H*W).
VETO_HOST_DEVICE int64_t nhwc_index_of(int64_t nchw_index, int64_t channels, int64_t spatial) {
  const int64_t s = nchw_index % spatial;
  const int64_t c = (nchw_index / spatial) % channels;
  const int64_t n = nchw_index / (spatial * channels);
  return (n * spatial + s) * channels + c;
}

// Flat KRSC (O, kh, kw, I) index of the weight at flat OIHW index `oihw_index`: the NHWC
// filter layout is the NHWC tensor layout with O as the batch and I as the channels.
VETO_HOST_DEVICE int64_t krsc_index_of(int64_t oihw_index, int64_t in_channels, int64_t kernel_spatial) {
  return nhwc_index_of(oihw_index, in_channels, kernel_spatial);
}

// Where value j (OIHW order within the filter) of output filter `filter` lives in a CUDA
// convolution's weights: OIHW in FP32, KRSC in bf16 (conv2d_set_filters, the sparse delta).
struct FilterLayout {
  int64_t in_per_group = 0, kernel_spatial = 0;  // (in_channels / groups), kh * kw
  bool krsc = false;
};

VETO_HOST_DEVICE int64_t filter_weight_index(const FilterLayout& l, int64_t filter, int64_t j) {
  const int64_t oihw = filter * l.in_per_group * l.kernel_spatial + j;
  return l.krsc ? krsc_index_of(oihw, l.in_per_group, l.kernel_spatial) : oihw;
}

// --- zero-pad shortcut (ResNet option A) ----------------------------------------------------
struct ZeroPadShortcutGeometry {
  int64_t channels = 0, in_h = 0, in_w = 0;      // input (per sample)
  int64_t out_channels = 0, out_h = 0, out_w = 0;  // output (per sample)
  int64_t stride = 1;
  int64_t pad_channels_before = 0;
};

// Flat input index read by flat output index `out_index`, or -1 for a zero (padded) channel.
VETO_HOST_DEVICE int64_t zero_pad_shortcut_source_index(const ZeroPadShortcutGeometry& g, int64_t out_index) {
  const int64_t j = out_index % g.out_w;
  const int64_t i = (out_index / g.out_w) % g.out_h;
  const int64_t oc = (out_index / (g.out_w * g.out_h)) % g.out_channels;
  const int64_t n = out_index / (g.out_w * g.out_h * g.out_channels);
  const int64_t c = oc - g.pad_channels_before;
  if (c < 0 || c >= g.channels) return -1;
  return ((n * g.channels + c) * g.in_h + i * g.stride) * g.in_w + j * g.stride;
}

// Backward, as a gather over dx: the flat output index whose gradient input index `in_index`
// receives, or -1 for a pixel the subsampling skipped (its gradient is 0). The inverse of
// zero_pad_shortcut_source_index on the pixels it reads.
VETO_HOST_DEVICE int64_t zero_pad_shortcut_gradient_source_index(const ZeroPadShortcutGeometry& g,
                                                                 int64_t in_index) {
  const int64_t w = in_index % g.in_w;
  const int64_t h = (in_index / g.in_w) % g.in_h;
  const int64_t c = (in_index / (g.in_w * g.in_h)) % g.channels;
  const int64_t n = in_index / (g.in_w * g.in_h * g.channels);
  if (h % g.stride != 0 || w % g.stride != 0) return -1;
  return ((n * g.out_channels + c + g.pad_channels_before) * g.out_h + h / g.stride) * g.out_w + w / g.stride;
}

// --- clip ---------------------------------------------------------------------------------------
// The reference's comparisons in its order, so NaN propagates the same way.
VETO_HOST_DEVICE float clip_value(float x, float lo, float hi) {
  const float v = x < lo ? lo : x;
  return v > hi ? hi : v;
}

// The gradient passes strictly inside (lo, hi), read off the output y: 0 at either bound
// (PyTorch's hardtanh rule); NaN y blocks.
VETO_HOST_DEVICE float clip_backward_value(float y, float dy, float lo, float hi) {
  return (lo < y && y < hi) ? dy : 0.0f;
}

// --- slice ------------------------------------------------------------------------------------
// Per sample, per axis in SliceOp's order (C, H, W): the input's extent, the output's
// (SliceOp::size), and the window's start and step.
struct SliceGeometry {
  int64_t in[3] = {0, 0, 0};
  int64_t out[3] = {0, 0, 0};
  int64_t start[3] = {0, 0, 0};
  int64_t step[3] = {1, 1, 1};
};

// Flat input index read by flat output index `out_index`.
VETO_HOST_DEVICE int64_t slice_source_index(const SliceGeometry& g, int64_t out_index) {
  const int64_t j = out_index % g.out[2];
  const int64_t i = (out_index / g.out[2]) % g.out[1];
  const int64_t oc = (out_index / (g.out[2] * g.out[1])) % g.out[0];
  const int64_t n = out_index / (g.out[2] * g.out[1] * g.out[0]);
  return ((n * g.in[0] + g.start[0] + oc * g.step[0]) * g.in[1] + g.start[1] + i * g.step[1]) * g.in[2] +
         g.start[2] + j * g.step[2];
}

// The output position along one axis that reads input position `in`, or -1 when the window
// skips it.
VETO_HOST_DEVICE int64_t slice_output_position(int64_t in, int64_t start, int64_t step, int64_t size) {
  const int64_t d = in - start;
  if (d < 0 || d % step != 0 || d / step >= size) return -1;
  return d / step;
}

// Backward, as a gather over dx: the flat output index whose gradient input index `in_index`
// receives, or -1 for a cell the slice skipped (its gradient is 0). The inverse of
// slice_source_index on the cells it reads.
VETO_HOST_DEVICE int64_t slice_gradient_source_index(const SliceGeometry& g, int64_t in_index) {
  const int64_t w = in_index % g.in[2];
  const int64_t h = (in_index / g.in[2]) % g.in[1];
  const int64_t c = (in_index / (g.in[2] * g.in[1])) % g.in[0];
  const int64_t n = in_index / (g.in[2] * g.in[1] * g.in[0]);
  const int64_t oc = slice_output_position(c, g.start[0], g.step[0], g.out[0]);
  const int64_t i = slice_output_position(h, g.start[1], g.step[1], g.out[1]);
  const int64_t j = slice_output_position(w, g.start[2], g.step[2], g.out[2]);
  if (oc < 0 || i < 0 || j < 0) return -1;
  return ((n * g.out[0] + oc) * g.out[1] + i) * g.out[2] + j;
}

// --- pad (the op; PadGeometry above is conv2d's explicit input padding) ------------------------
// Per sample, per axis in PadOp's order (C, H, W): the input's extent, the output's, and the
// padding before the input.
struct PadOpGeometry {
  int64_t in[3] = {0, 0, 0};
  int64_t out[3] = {0, 0, 0};
  int64_t before[3] = {0, 0, 0};
};

// Flat input index read by flat output index `out_index`, or -1 for a padding cell (it holds
// the op's value).
VETO_HOST_DEVICE int64_t pad_op_source_index(const PadOpGeometry& g, int64_t out_index) {
  const int64_t w = out_index % g.out[2] - g.before[2];
  const int64_t h = (out_index / g.out[2]) % g.out[1] - g.before[1];
  const int64_t c = (out_index / (g.out[2] * g.out[1])) % g.out[0] - g.before[0];
  const int64_t n = out_index / (g.out[2] * g.out[1] * g.out[0]);
  if (c < 0 || c >= g.in[0] || h < 0 || h >= g.in[1] || w < 0 || w >= g.in[2]) return -1;
  return ((n * g.in[0] + c) * g.in[1] + h) * g.in[2] + w;
}

// Backward, a crop as a gather over dx: the flat output index that input index `in_index` was
// copied to (the padding's gradient is dropped).
VETO_HOST_DEVICE int64_t pad_op_gradient_source_index(const PadOpGeometry& g, int64_t in_index) {
  const int64_t w = in_index % g.in[2];
  const int64_t h = (in_index / g.in[2]) % g.in[1];
  const int64_t c = (in_index / (g.in[2] * g.in[1])) % g.in[0];
  const int64_t n = in_index / (g.in[2] * g.in[1] * g.in[0]);
  return ((n * g.out[0] + c + g.before[0]) * g.out[1] + h + g.before[1]) * g.out[2] + w + g.before[2];
}

// --- global average pool backward -------------------------------------------------------------
// Every cell of a plane gets the plane's output gradient over the cell count.
VETO_HOST_DEVICE float global_avg_pool_gradient_value(float dy, int64_t spatial) {
  return dy / static_cast<float>(spatial);
}

// --- average pool ---------------------------------------------------------------------------
struct AvgPoolGeometry {
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  bool count_include_pad = true;
};

// The part of output (i, j)'s window that lies inside the input, and the divisor of its mean:
// the whole window when padded cells count (torchvision), else only the cells inside (Keras).
struct PoolWindow {
  int64_t h_begin, h_end, w_begin, w_end;
  int64_t divisor;
};

VETO_HOST_DEVICE PoolWindow avg_pool_window(const AvgPoolGeometry& g, int64_t i, int64_t j) {
  const int64_t h0 = i * g.stride_h - g.pad_top, w0 = j * g.stride_w - g.pad_left;
  PoolWindow win;
  win.h_begin = max_i64(h0, 0);
  win.h_end = min_i64(h0 + g.kernel_h, g.in_h);
  win.w_begin = max_i64(w0, 0);
  win.w_end = min_i64(w0 + g.kernel_w, g.in_w);
  const int64_t inside = max_i64(win.h_end - win.h_begin, 0) * max_i64(win.w_end - win.w_begin, 0);
  win.divisor = g.count_include_pad ? g.kernel_h * g.kernel_w : inside;
  return win;
}

// Output (i, j) of one (n, c) plane (`plane` points at its in_h x in_w input).
VETO_HOST_DEVICE float avg_pool_value(const AvgPoolGeometry& g, const float* plane, int64_t i, int64_t j) {
  const PoolWindow win = avg_pool_window(g, i, j);
  float sum = 0.0f;
  for (int64_t h = win.h_begin; h < win.h_end; ++h)
    for (int64_t w = win.w_begin; w < win.w_end; ++w) sum += plane[h * g.in_w + w];
  return win.divisor > 0 ? sum / static_cast<float>(win.divisor) : 0.0f;
}

// Max over the part of output (i, j)'s window inside the input (padded cells never win).
// The geometry's count_include_pad is irrelevant here.
VETO_HOST_DEVICE float max_pool_value(const AvgPoolGeometry& g, const float* plane, int64_t i, int64_t j) {
  const PoolWindow win = avg_pool_window(g, i, j);
  float m = -3.402823466e+38f;
  for (int64_t h = win.h_begin; h < win.h_end; ++h)
    for (int64_t w = win.w_begin; w < win.w_end; ++w) m = plane[h * g.in_w + w] > m ? plane[h * g.in_w + w] : m;
  return m;
}

// --- pool backward (gathers) -----------------------------------------------------------------
// The backward kernels run one thread per input cell and sum over the outputs whose windows
// contain it, so no two threads write one cell (no atomics, the same sum on every run).
// Outputs [i_begin, i_end) x [j_begin, j_end) are the windows that contain cell (h, w).
struct PoolOutputRange {
  int64_t i_begin, i_end, j_begin, j_end;
};

// Window i covers rows [i * stride - pad, i * stride - pad + kernel): it contains row h when
// (h + pad - kernel + 1) / stride <= i <= (h + pad) / stride, rounded inward. h + pad >= 0, so
// only the lower bound can be negative (then it is 0).
VETO_HOST_DEVICE int64_t pool_first_window(int64_t cell, int64_t pad, int64_t kernel, int64_t stride) {
  const int64_t lowest = cell + pad - kernel + 1;
  return lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
}
VETO_HOST_DEVICE int64_t pool_windows_end(int64_t cell, int64_t pad, int64_t stride, int64_t outputs) {
  return min_i64((cell + pad) / stride + 1, outputs);
}

VETO_HOST_DEVICE PoolOutputRange pool_windows_containing(const AvgPoolGeometry& g, int64_t h, int64_t w) {
  PoolOutputRange r;
  r.i_begin = pool_first_window(h, g.pad_top, g.kernel_h, g.stride_h);
  r.i_end = pool_windows_end(h, g.pad_top, g.stride_h, g.out_h);
  r.j_begin = pool_first_window(w, g.pad_left, g.kernel_w, g.stride_w);
  r.j_end = pool_windows_end(w, g.pad_left, g.stride_w, g.out_w);
  return r;
}

// Gradient at input cell (h, w) of one plane (`dy_plane`: its out_h x out_w output gradient):
// the sum of dy / divisor over the windows containing the cell, in row-major window order
// (the order the reference adds them in, so the sums agree bit for bit).
VETO_HOST_DEVICE float avg_pool_gradient_value(const AvgPoolGeometry& g, const float* dy_plane, int64_t h,
                                               int64_t w) {
  const PoolOutputRange r = pool_windows_containing(g, h, w);
  float sum = 0.0f;
  for (int64_t i = r.i_begin; i < r.i_end; ++i)
    for (int64_t j = r.j_begin; j < r.j_end; ++j) {
      // A window containing a real cell has a divisor of at least 1.
      const int64_t divisor = avg_pool_window(g, i, j).divisor;
      sum += dy_plane[i * g.out_w + j] / static_cast<float>(divisor);
    }
  return sum;
}

// In-plane index (h * in_w + w) of the first maximum of output (i, j)'s window in row-major
// order, or -1 for a window with no input cell. The reference's comparison exactly
// (`best < candidate` replaces), so ties and NaNs pick the same cell.
VETO_HOST_DEVICE int64_t max_pool_window_argmax(const AvgPoolGeometry& g, const float* plane, int64_t i,
                                                int64_t j) {
  const PoolWindow win = avg_pool_window(g, i, j);
  int64_t best = -1;
  for (int64_t h = win.h_begin; h < win.h_end; ++h)
    for (int64_t w = win.w_begin; w < win.w_end; ++w) {
      const int64_t at = h * g.in_w + w;
      if (best < 0 || plane[best] < plane[at]) best = at;
    }
  return best;
}

// Gradient at input cell (h, w) of one plane: the dy of every window containing the cell whose
// first maximum it is, summed in row-major window order.
VETO_HOST_DEVICE float max_pool_gradient_value(const AvgPoolGeometry& g, const float* x_plane,
                                               const float* dy_plane, int64_t h, int64_t w) {
  const PoolOutputRange r = pool_windows_containing(g, h, w);
  const int64_t cell = h * g.in_w + w;
  float sum = 0.0f;
  for (int64_t i = r.i_begin; i < r.i_end; ++i)
    for (int64_t j = r.j_begin; j < r.j_end; ++j)
      if (max_pool_window_argmax(g, x_plane, i, j) == cell) sum += dy_plane[i * g.out_w + j];
  return sum;
}

// --- concat backward --------------------------------------------------------------------------
// Flat dy index read by flat index `part_index` of one input's gradient: that input's channels
// sit at [channel_offset, channel_offset + part_channels) of dy's total_channels.
struct ConcatGeometry {
  int64_t part_channels = 0, spatial = 0;
  int64_t channel_offset = 0, total_channels = 0;
};

VETO_HOST_DEVICE int64_t concat_gradient_source_index(const ConcatGeometry& g, int64_t part_index) {
  const int64_t s = part_index % g.spatial;
  const int64_t c = (part_index / g.spatial) % g.part_channels;
  const int64_t n = part_index / (g.spatial * g.part_channels);
  return (n * g.total_channels + g.channel_offset + c) * g.spatial + s;
}

// Per-channel affine constants passed by value to the kernel (torchvision's transform_input
// has 3 channels; 16 leaves room without a device buffer).
constexpr int kMaxAffineChannels = 16;
struct ChannelAffineConstants {
  float scale[kMaxAffineChannels];
  float shift[kMaxAffineChannels];
};

VETO_HOST_DEVICE float channel_affine_value(const ChannelAffineConstants& k, int64_t channel, float x) {
  return x * k.scale[channel] + k.shift[channel];
}

VETO_HOST_DEVICE float channel_affine_gradient_value(const ChannelAffineConstants& k, int64_t channel, float dy) {
  return dy * k.scale[channel];
}

// --- dense backward (cuBLAS operand mapping) ---------------------------------------------------
// cuBLAS is column-major; veto's matrices are row-major, and a row-major (r, c) matrix read
// column-major is its transpose (c, r) with leading dimension c. The sgemm arguments live here
// so the host tests can run them through a plain column-major GEMM against the reference.
struct GemmCall {
  bool transpose_a = false, transpose_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
};

// dx (batch, in) = dy (batch, out) * w (out, in), as column-major
// dx^T (in, batch) = w^T (in, out) * dy^T (out, batch): A = w read as is (w^T, lda = in),
// B = dy read as is (dy^T, ldb = out), C = dx^T (ldc = in).
VETO_HOST_DEVICE GemmCall dense_backward_data_gemm(int64_t batch, int64_t in_features, int64_t out_features) {
  GemmCall call;
  call.m = in_features;
  call.n = batch;
  call.k = out_features;
  call.lda = in_features;
  call.ldb = out_features;
  call.ldc = in_features;
  return call;
}

// --- strided reductions (global average pool, softmax) -------------------------------------
// A block of `lanes` threads reduces one row: lane k takes elements k, k + lanes, ...; the
// partial results are then combined (sum / max). The host tests run the same lane split.

VETO_HOST_DEVICE float strided_partial_sum(const float* row, int64_t count, int64_t lane, int64_t lanes) {
  float sum = 0.0f;
  for (int64_t k = lane; k < count; k += lanes) sum += row[k];
  return sum;
}

VETO_HOST_DEVICE float max_value(float a, float b) { return b > a ? b : a; }

// Lowest float instead of -INFINITY so the value is the same under any fast-math setting;
// an empty lane combines away under max_value.
constexpr float kLowestFloat = -3.402823466e+38f;

VETO_HOST_DEVICE float softmax_partial_max(const float* row, int64_t cols, int64_t lane, int64_t lanes) {
  float m = kLowestFloat;
  for (int64_t k = lane; k < cols; k += lanes) m = max_value(m, row[k]);
  return m;
}

// Sum of exp(x - row_max) over this lane's elements (row_max shift: large logits do not overflow).
VETO_HOST_DEVICE float softmax_partial_exp_sum(const float* row, int64_t cols, int64_t lane, int64_t lanes,
                                               float row_max) {
  float sum = 0.0f;
  for (int64_t k = lane; k < cols; k += lanes) sum += expf(row[k] - row_max);
  return sum;
}

VETO_HOST_DEVICE void softmax_write(const float* row, float* out, int64_t cols, int64_t lane, int64_t lanes,
                                    float row_max, float exp_sum) {
  for (int64_t k = lane; k < cols; k += lanes) out[k] = expf(row[k] - row_max) / exp_sum;
}

// Softmax backward: dx = y * (dy - dot) with dot = sum(dy * y) over the row; each lane brings
// its share of the dot product, then writes its own elements.
VETO_HOST_DEVICE float softmax_backward_partial_dot(const float* y, const float* dy, int64_t cols, int64_t lane,
                                                    int64_t lanes) {
  float sum = 0.0f;
  for (int64_t k = lane; k < cols; k += lanes) sum += dy[k] * y[k];
  return sum;
}

VETO_HOST_DEVICE void softmax_backward_write(const float* y, const float* dy, float* dx, int64_t cols, int64_t lane,
                                             int64_t lanes, float dot, bool accumulate) {
  for (int64_t k = lane; k < cols; k += lanes) store_gradient(dx + k, y[k] * (dy[k] - dot), accumulate);
}

// --- attribution ------------------------------------------------------------------------------
// One integrated-gradients step, in Captum's order of operations.
VETO_HOST_DEVICE float interpolate_value(float baseline, float x, float alpha) {
  return baseline + alpha * (x - baseline);
}

// One lane of a conductance channel: v = grad * (upper - lower) over its strided share of the
// channel's `spatial` values, added to map (when not null, each element by its one lane) and
// summed in double (the reference's accumulator), returned for the block to combine.
VETO_HOST_DEVICE double conductance_partial_sum(const float* grad, const float* upper, const float* lower,
                                                float* map, int64_t spatial, int64_t lane, int64_t lanes) {
  double sum = 0.0;
  for (int64_t k = lane; k < spatial; k += lanes) {
    const float v = grad[k] * (upper[k] - lower[k]);
    sum += static_cast<double>(v);
    if (map) map[k] += v;
  }
  return sum;
}

}  // namespace veto::cuda_math
