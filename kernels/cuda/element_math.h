// The per-element math of every custom CUDA kernel, written once as __host__ __device__
// functions. The .cu files only add the launch (which thread computes which element); the
// math itself runs on the host in tests/test_cuda_host_kernels.cpp against kernels/reference,
// so it is checked even on machines without a GPU (DESIGN.md, correctness ladder point 5).
//
// Plain C++: no CUDA headers, so g++ can compile this for veto_tests.
#pragma once

#include <cmath>
#include <cstdint>

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

}  // namespace veto::cuda_math
