// The per-element math of the custom CUDA kernels (kernels/cuda/element_math.h), run on the
// host against kernels/reference. Runs everywhere, GPU or not (DESIGN.md ladder point 5): the
// .cu files only decide which thread computes which element with these same functions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kernels/cuda/element_math.h"
#include "kernels/reference/add.h"
#include "kernels/reference/avg_pool.h"
#include "kernels/reference/batch_norm.h"
#include "kernels/reference/channel_affine.h"
#include "kernels/reference/clip.h"
#include "kernels/reference/concat.h"
#include "kernels/reference/conductance.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/dense.h"
#include "kernels/reference/global_avg_pool.h"
#include "kernels/reference/max_pool.h"
#include "kernels/reference/pad.h"
#include "kernels/reference/relu.h"
#include "kernels/reference/slice.h"
#include "kernels/reference/softmax.h"
#include "kernels/reference/zero_pad_shortcut.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

namespace cm = cuda_math;

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "index " << i << " is " << got[i];
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << "index " << i;
  }
}

// The loop every elementwise CUDA kernel runs (grid-stride), here with one "thread".
template <typename F>
void for_each_index(int64_t count, F f) {
  for (int64_t i = 0; i < count; ++i) f(i);
}

TEST(CudaHostKernels, ReluMatchesReference) {
  std::vector<float> x = random_values(101, 1);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  x.push_back(NAN);  // the reference maps NaN to 0 (`x > 0 ? x : 0`); so must the kernel
  std::vector<float> want(x.size()), got(x.size());
  reference::relu_forward(static_cast<int64_t>(x.size()), x.data(), want.data());
  for_each_index(static_cast<int64_t>(x.size()), [&](int64_t i) { got[i] = cm::relu_value(x[i]); });
  expect_close(got, want, 0.0f, 0.0f);
}

TEST(CudaHostKernels, AddWithAndWithoutReluMatchesReference) {
  const int64_t n = 257;
  const std::vector<float> a = random_values(n, 2), b = random_values(n, 3);
  for (bool relu : {false, true}) {
    std::vector<float> want(n), got(n);
    reference::add_forward(n, a.data(), b.data(), want.data());
    if (relu) reference::relu_forward(n, want.data(), want.data());
    for_each_index(n, [&](int64_t i) { got[i] = cm::add_value(a[i], b[i], relu); });
    expect_close(got, want, 0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, BatchNormMatchesReference) {
  const int64_t batch = 3, channels = 5, spatial = 7 * 3;
  const int64_t count = batch * channels * spatial;
  const std::vector<float> x = random_values(count, 4), gamma = random_values(channels, 5),
                           beta = random_values(channels, 6), mean = random_values(channels, 7),
                           var = random_values(channels, 8, 0.01f, 3.0f);
  const float eps = 1e-3f;
  std::vector<float> want(count), got(count);
  reference::batch_norm_forward(batch, channels, spatial, x.data(), gamma.data(), beta.data(), mean.data(),
                                var.data(), eps, want.data());
  for_each_index(count, [&](int64_t i) {
    const int64_t c = cm::channel_of(i, channels, spatial);
    got[i] = cm::batch_norm_value(x[i], gamma[c], beta[c], mean[c], var[c], eps);
  });
  expect_close(got, want, 1e-6f, 1e-6f);
}

// Reference convolution without bias, then the epilogue, equals the reference with bias,
// residual add and ReLU; the same epilogue with one spatial cell is dense's bias add.
TEST(CudaHostKernels, Conv2dEpilogueMatchesReferenceFusions) {
  Conv2dOp op;
  op.in_channels = 3;
  op.out_channels = 4;
  op.kernel_h = op.kernel_w = 3;
  op.pad_top = op.pad_left = op.pad_bottom = op.pad_right = 1;
  const int64_t batch = 2, h = 5, w = 6, out_count = batch * op.out_channels * h * w;
  const std::vector<float> x = random_values(batch * op.in_channels * h * w, 9),
                           weight = random_values(op.out_channels * op.in_channels * 9, 10),
                           bias = random_values(op.out_channels, 11), residual = random_values(out_count, 12);
  std::vector<float> conv(out_count);
  reference::conv2d_forward<float>(op, batch, h, w, x.data(), weight.data(), nullptr, h, w, conv.data());
  for (bool with_bias : {false, true})
    for (bool with_residual : {false, true})
      for (bool relu : {false, true}) {
        SCOPED_TRACE(testing::Message() << "bias " << with_bias << " residual " << with_residual << " relu " << relu);
        std::vector<float> want(out_count), got(out_count);
        reference::conv2d_forward<float>(op, batch, h, w, x.data(), weight.data(), with_bias ? bias.data() : nullptr,
                                         h, w, want.data());
        if (with_residual) reference::add_forward(out_count, want.data(), residual.data(), want.data());
        if (relu) reference::relu_forward(out_count, want.data(), want.data());
        for_each_index(out_count, [&](int64_t i) {
          const float b = with_bias ? bias[cm::channel_of(i, op.out_channels, h * w)] : 0.0f;
          got[i] = cm::conv2d_epilogue_value(conv[i], b, with_residual ? residual[i] : 0.0f, relu);
        });
        expect_close(got, want, 1e-5f, 1e-5f);
      }
}

// Convolutions with asymmetric padding (forward and backward): kernel, stride, padding
// (top, left, bottom, right), input size, dilation and groups, as 3 -> 2 channels per group.
// The explicit copy only adds rows and columns, so dilated windows must fit it the same way.
struct AsymmetricConvCase {
  int64_t kh, kw, sh, sw, top, left, bottom, right, h, w;
  int64_t dh = 1, dw = 1, groups = 1;
  int64_t span_h() const { return (kh - 1) * dh + 1; }  // the window's extent
  int64_t span_w() const { return (kw - 1) * dw + 1; }
};
const AsymmetricConvCase kAsymmetricConvCases[] = {
    {3, 3, 2, 2, 0, 0, 1, 1, 8, 8},  // TensorFlow "same", stride 2, even input
    {3, 3, 2, 2, 1, 0, 1, 1, 7, 9},  // asymmetric in width only
    {1, 7, 1, 1, 0, 3, 0, 3, 5, 6},  // 1x7, symmetric (no copy, an identity crop)
    {7, 1, 1, 1, 3, 0, 3, 0, 6, 5},  // 7x1
    {2, 2, 1, 1, 0, 0, 1, 1, 4, 5},  // even kernel "same"
    {3, 3, 1, 1, 2, 0, 1, 3, 5, 4},  // both sides, both directions
    {3, 3, 2, 1, 0, 2, 1, 0, 6, 5},  // more on the left than the right: the crop's column shift
    {3, 3, 2, 2, 0, 0, 0, 0, 9, 9},  // stride-2 valid
    {3, 3, 2, 2, 0, 0, 1, 1, 9, 9, 2, 2, 1},  // dilated, pads only after
    {3, 3, 1, 2, 2, 1, 1, 3, 7, 8, 2, 3, 2},  // dilation (2,3), 2 groups, both directions
    {3, 3, 2, 2, 1, 0, 2, 1, 8, 7, 2, 2, 3},  // dilated, 3 groups
};

Conv2dOp asymmetric_conv_op(const AsymmetricConvCase& k) {
  Conv2dOp op;
  op.in_channels = 3 * k.groups;
  op.out_channels = 2 * k.groups;
  op.kernel_h = k.kh;
  op.kernel_w = k.kw;
  op.stride_h = k.sh;
  op.stride_w = k.sw;
  op.pad_top = k.top;
  op.pad_left = k.left;
  op.pad_bottom = k.bottom;
  op.pad_right = k.right;
  op.dilation_h = k.dh;
  op.dilation_w = k.dw;
  op.groups = k.groups;
  return op;
}

// CudaConv2d's split of the padding: cuDNN gets the smaller side's on each axis
// (symmetric_part), the rest is explicit zero padding of the input (explicit_padding).
cm::PadGeometry explicit_padding(const AsymmetricConvCase& k) {
  const int64_t sym_h = std::min(k.top, k.bottom), sym_w = std::min(k.left, k.right);
  cm::PadGeometry g;
  g.in_h = k.h;
  g.in_w = k.w;
  g.pad_top = k.top - sym_h;
  g.pad_left = k.left - sym_w;
  g.out_h = k.h + (k.top - sym_h) + (k.bottom - sym_h);
  g.out_w = k.w + (k.left - sym_w) + (k.right - sym_w);
  return g;
}

Conv2dOp symmetric_part(const Conv2dOp& op) {
  Conv2dOp s = op;
  s.pad_top = s.pad_bottom = std::min(op.pad_top, op.pad_bottom);
  s.pad_left = s.pad_right = std::min(op.pad_left, op.pad_right);
  return s;
}

// The asymmetric-padding strategy of the cuDNN convolution: explicit zero padding of the
// excess (pad_source_index) + symmetric padding of the smaller side equals the asymmetric
// reference convolution.
TEST(CudaHostKernels, Conv2dAsymmetricPaddingAsExplicitPadPlusSymmetric) {
  for (const AsymmetricConvCase& k : kAsymmetricConvCases) {
    SCOPED_TRACE(testing::Message() << "kernel " << k.kh << "x" << k.kw << " pads " << k.top << "," << k.left << ","
                                    << k.bottom << "," << k.right << " input " << k.h << "x" << k.w << " dilation "
                                    << k.dh << "x" << k.dw << " groups " << k.groups);
    const Conv2dOp op = asymmetric_conv_op(k);
    const int64_t batch = 3;
    const int64_t out_h = (k.h + k.top + k.bottom - k.span_h()) / k.sh + 1,
                  out_w = (k.w + k.left + k.right - k.span_w()) / k.sw + 1;
    const std::vector<float> x = random_values(batch * op.in_channels * k.h * k.w, 13),
                             weight = random_values(op.out_channels * (op.in_channels / op.groups) * k.kh * k.kw, 14);
    std::vector<float> want(batch * op.out_channels * out_h * out_w);
    reference::conv2d_forward<float>(op, batch, k.h, k.w, x.data(), weight.data(), nullptr, out_h, out_w,
                                     want.data());

    // What CudaConv2d does: cuDNN gets min(pad) on each axis, the rest is an explicit copy.
    const cm::PadGeometry g = explicit_padding(k);
    std::vector<float> padded(batch * op.in_channels * g.out_h * g.out_w);
    for_each_index(static_cast<int64_t>(padded.size()), [&](int64_t i) {
      const int64_t source = cm::pad_source_index(g, i);
      padded[i] = source >= 0 ? x[source] : 0.0f;
    });
    const Conv2dOp symmetric = symmetric_part(op);
    ASSERT_EQ((g.out_h + 2 * symmetric.pad_top - k.span_h()) / k.sh + 1, out_h);
    ASSERT_EQ((g.out_w + 2 * symmetric.pad_left - k.span_w()) / k.sw + 1, out_w);
    std::vector<float> got(want.size());
    reference::conv2d_forward<float>(symmetric, batch, g.out_h, g.out_w, padded.data(), weight.data(), nullptr,
                                     out_h, out_w, got.data());
    expect_close(got, want, 0.0f, 0.0f);  // the same products in the same order
  }
}

// ResNet option-A shortcut cases (forward and backward): channels, input size, stride, zero
// channels before and after.
struct ZeroPadCase {
  int64_t channels, h, w, stride, before, after;
};
const ZeroPadCase kZeroPadCases[] = {{16, 32, 32, 2, 8, 8}, {3, 7, 7, 2, 1, 2}, {5, 6, 5, 3, 0, 4}, {4, 5, 5, 1, 2, 0}};

cm::ZeroPadShortcutGeometry zero_pad_geometry(const ZeroPadCase& k) {
  cm::ZeroPadShortcutGeometry g;
  g.channels = k.channels;
  g.in_h = k.h;
  g.in_w = k.w;
  g.out_channels = k.channels + k.before + k.after;
  g.out_h = (k.h + k.stride - 1) / k.stride;
  g.out_w = (k.w + k.stride - 1) / k.stride;
  g.stride = k.stride;
  g.pad_channels_before = k.before;
  return g;
}

TEST(CudaHostKernels, ZeroPadShortcutIndexMappingMatchesReference) {
  for (const ZeroPadCase& k : kZeroPadCases) {
    SCOPED_TRACE(testing::Message() << "channels " << k.channels << " input " << k.h << "x" << k.w << " stride "
                                    << k.stride);
    const ZeroPadShortcutOp op{k.stride, k.before, k.after};
    const int64_t batch = 3;
    const cm::ZeroPadShortcutGeometry g = zero_pad_geometry(k);
    const std::vector<float> x = random_values(batch * k.channels * k.h * k.w, 15);
    const int64_t out_count = batch * g.out_channels * g.out_h * g.out_w;
    std::vector<float> want(out_count), got(out_count);
    reference::zero_pad_shortcut_forward(op, batch, k.channels, k.h, k.w, x.data(), want.data());
    for_each_index(out_count, [&](int64_t i) {
      const int64_t source = cm::zero_pad_shortcut_source_index(g, i);
      ASSERT_LT(source, static_cast<int64_t>(x.size()));
      got[i] = source >= 0 ? x[source] : 0.0f;
    });
    expect_close(got, want, 0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, ClipMatchesReference) {
  std::vector<float> x = random_values(101, 70, -8.0f, 8.0f);
  x.push_back(0.0f);
  x.push_back(6.0f);
  x.push_back(NAN);  // stays NaN in the reference; so must it in the kernel
  const int64_t n = static_cast<int64_t>(x.size());
  for (const ClipOp& op : {ClipOp{0, 6}, ClipOp{-1.5f, 0.25f}}) {
    std::vector<float> want(x.size()), got(x.size());
    reference::clip_forward(op, n, x.data(), want.data());
    for_each_index(n, [&](int64_t i) { got[i] = cm::clip_value(x[i], op.min, op.max); });
    EXPECT_TRUE(std::isnan(got.back()));
    got.pop_back();
    want.pop_back();
    expect_close(got, want, 0.0f, 0.0f);
  }
}

// Slices (forward and backward): input shape and op.
struct SliceCase {
  int64_t channels, h, w;
  SliceOp op;
};
const SliceCase kSliceCases[] = {
    {16, 32, 32, {{0, 0, 0}, {1, 2, 2}, {16, 16, 16}}},  // x[:, :, ::2, ::2]
    {7, 13, 11, {{1, 2, 3}, {2, 3, 1}, {3, 4, 5}}},      // crop with strides
    {5, 6, 7, {{0, 0, 0}, {4, 5, 6}, {2, 2, 2}}},        // sparse along every axis
    {3, 4, 5, {{2, 3, 4}, {1, 1, 1}, {1, 1, 1}}},        // the last cell
};

cm::SliceGeometry slice_geometry(const SliceCase& k) {
  cm::SliceGeometry g;
  const int64_t in[3] = {k.channels, k.h, k.w};
  for (int a = 0; a < 3; ++a) {
    g.in[a] = in[a];
    g.out[a] = k.op.size[a];
    g.start[a] = k.op.start[a];
    g.step[a] = k.op.step[a];
  }
  return g;
}

TEST(CudaHostKernels, SliceIndexMappingMatchesReference) {
  for (const SliceCase& k : kSliceCases) {
    SCOPED_TRACE(testing::Message() << "input " << k.channels << "x" << k.h << "x" << k.w);
    const int64_t batch = 3;
    const cm::SliceGeometry g = slice_geometry(k);
    const std::vector<float> x = random_values(batch * k.channels * k.h * k.w, 71);
    const int64_t out_count = batch * g.out[0] * g.out[1] * g.out[2];
    std::vector<float> want(out_count), got(out_count);
    reference::slice_forward(k.op, batch, k.channels, k.h, k.w, x.data(), want.data());
    for_each_index(out_count, [&](int64_t i) {
      const int64_t source = cm::slice_source_index(g, i);
      ASSERT_GE(source, 0);
      ASSERT_LT(source, static_cast<int64_t>(x.size()));
      got[i] = x[source];
    });
    expect_close(got, want, 0.0f, 0.0f);
  }
}

// Pads (forward and backward): input shape and op.
struct PadCase {
  int64_t channels, h, w;
  PadOp op;
};
const PadCase kPadCases[] = {
    {3, 8, 8, {{0, 0, 0}, {0, 1, 1}, 0.0f}},  // TensorFlow "same", stride 2
    {5, 7, 9, {{2, 0, 3}, {1, 2, 0}, -0.5f}},
    {2, 1, 1, {{0, 3, 0}, {0, 0, 2}, 1.0f}},
};

cm::PadOpGeometry pad_geometry(const PadCase& k) {
  cm::PadOpGeometry g;
  const int64_t in[3] = {k.channels, k.h, k.w};
  for (int a = 0; a < 3; ++a) {
    g.in[a] = in[a];
    g.out[a] = in[a] + k.op.before[a] + k.op.after[a];
    g.before[a] = k.op.before[a];
  }
  return g;
}

TEST(CudaHostKernels, PadIndexMappingMatchesReference) {
  for (const PadCase& k : kPadCases) {
    SCOPED_TRACE(testing::Message() << "input " << k.channels << "x" << k.h << "x" << k.w);
    const int64_t batch = 3;
    const cm::PadOpGeometry g = pad_geometry(k);
    const std::vector<float> x = random_values(batch * k.channels * k.h * k.w, 72);
    const int64_t out_count = batch * g.out[0] * g.out[1] * g.out[2];
    std::vector<float> want(out_count), got(out_count);
    reference::pad_forward(k.op, batch, k.channels, k.h, k.w, x.data(), want.data());
    for_each_index(out_count, [&](int64_t i) {
      const int64_t source = cm::pad_op_source_index(g, i);
      ASSERT_LT(source, static_cast<int64_t>(x.size()));
      got[i] = source >= 0 ? x[source] : k.op.value;
    });
    expect_close(got, want, 0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, AvgPoolWindowDivisorBothWays) {
  cm::AvgPoolGeometry g;
  g.in_h = g.in_w = 5;
  g.out_h = g.out_w = 5;
  g.kernel_h = g.kernel_w = 3;
  g.pad_top = g.pad_left = 1;
  g.count_include_pad = true;
  EXPECT_EQ(cm::avg_pool_window(g, 0, 0).divisor, 9);  // torchvision: padded cells count
  EXPECT_EQ(cm::avg_pool_window(g, 2, 2).divisor, 9);
  g.count_include_pad = false;
  EXPECT_EQ(cm::avg_pool_window(g, 0, 0).divisor, 4);  // Keras: corner sees 2x2 real cells
  EXPECT_EQ(cm::avg_pool_window(g, 0, 2).divisor, 6);  // edge: 2x3
  EXPECT_EQ(cm::avg_pool_window(g, 2, 2).divisor, 9);
  const cm::PoolWindow corner = cm::avg_pool_window(g, 4, 4);
  EXPECT_EQ(corner.h_begin, 3);
  EXPECT_EQ(corner.h_end, 5);
  EXPECT_EQ(corner.w_begin, 3);
  EXPECT_EQ(corner.w_end, 5);
}

TEST(CudaHostKernels, AvgPoolMatchesReference) {
  struct Case {
    int64_t kh, kw, sh, sw, top, left, bottom, right, h, w;
  };
  const Case cases[] = {
      {3, 3, 1, 1, 1, 1, 1, 1, 8, 8},  // Inception's branch pool
      {2, 2, 2, 2, 0, 0, 0, 0, 7, 9},  // stride 2, odd input (last row/col dropped)
      {3, 3, 2, 2, 0, 0, 1, 1, 6, 6},  // asymmetric "same", stride 2
      {5, 5, 3, 3, 0, 0, 0, 0, 17, 17},
      {1, 3, 1, 2, 0, 1, 0, 1, 4, 7},
  };
  for (const Case& k : cases)
    for (bool include_pad : {true, false}) {
      SCOPED_TRACE(testing::Message() << "kernel " << k.kh << "x" << k.kw << " stride " << k.sh << "x" << k.sw
                                      << " count_include_pad " << include_pad);
      AvgPoolOp op;
      op.kernel_h = k.kh;
      op.kernel_w = k.kw;
      op.stride_h = k.sh;
      op.stride_w = k.sw;
      op.pad_top = k.top;
      op.pad_left = k.left;
      op.pad_bottom = k.bottom;
      op.pad_right = k.right;
      op.count_include_pad = include_pad;
      const int64_t batch = 3, channels = 5;
      const int64_t out_h = (k.h + k.top + k.bottom - k.kh) / k.sh + 1,
                    out_w = (k.w + k.left + k.right - k.kw) / k.sw + 1;
      cm::AvgPoolGeometry g;
      g.in_h = k.h;
      g.in_w = k.w;
      g.out_h = out_h;
      g.out_w = out_w;
      g.kernel_h = k.kh;
      g.kernel_w = k.kw;
      g.stride_h = k.sh;
      g.stride_w = k.sw;
      g.pad_top = k.top;
      g.pad_left = k.left;
      g.count_include_pad = include_pad;
      const std::vector<float> x = random_values(batch * channels * k.h * k.w, 16);
      const int64_t out_count = batch * channels * out_h * out_w;
      std::vector<float> want(out_count), got(out_count);
      reference::avg_pool_forward(op, batch, channels, k.h, k.w, x.data(), out_h, out_w, want.data());
      // avg_pool.cu's thread-to-element mapping.
      for_each_index(out_count, [&](int64_t o) {
        const int64_t plane = o / (out_h * out_w), rem = o % (out_h * out_w);
        got[o] = cm::avg_pool_value(g, x.data() + plane * k.h * k.w, rem / out_w, rem % out_w);
      });
      expect_close(got, want, 0.0f, 0.0f);  // same sums in the same order
    }
}

// Block sizes the row kernels use (32..256) and ones they never do, to show the lane split
// does not matter beyond rounding.
const int64_t kLaneCounts[] = {1, 3, 32, 64, 256};

TEST(CudaHostKernels, GlobalAvgPoolStridedSumsMatchReference) {
  const int64_t batch = 3, channels = 7;
  for (int64_t spatial : {1, 8 * 8, 7 * 7, 17 * 17}) {
    const std::vector<float> x = random_values(batch * channels * spatial, 17);
    std::vector<float> want(batch * channels);
    reference::global_avg_pool_forward(batch, channels, spatial, x.data(), want.data());
    for (int64_t lanes : kLaneCounts) {
      SCOPED_TRACE(testing::Message() << "spatial " << spatial << " lanes " << lanes);
      std::vector<float> got(batch * channels);
      for (int64_t plane = 0; plane < batch * channels; ++plane) {
        float sum = 0.0f;
        for (int64_t lane = 0; lane < lanes; ++lane)
          sum += cm::strided_partial_sum(x.data() + plane * spatial, spatial, lane, lanes);
        got[plane] = sum / static_cast<float>(spatial);
      }
      expect_close(got, want, 1e-6f, 1e-5f);
    }
  }
}

TEST(CudaHostKernels, SoftmaxRowsWithMaxShiftMatchReference) {
  for (int64_t cols : {1, 10, 1000, 1001}) {
    const int64_t rows = 3;
    std::vector<float> x = random_values(rows * cols, 18, -5.0f, 5.0f);
    // Large logits: without the max shift exp() overflows to inf.
    for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] += 1000.0f;
    std::vector<float> want(rows * cols);
    reference::softmax_forward(rows, cols, x.data(), want.data());
    for (int64_t lanes : kLaneCounts) {
      SCOPED_TRACE(testing::Message() << "cols " << cols << " lanes " << lanes);
      std::vector<float> got(rows * cols);
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = x.data() + r * cols;
        float row_max = cm::kLowestFloat;
        for (int64_t lane = 0; lane < lanes; ++lane)
          row_max = cm::max_value(row_max, cm::softmax_partial_max(row, cols, lane, lanes));
        float exp_sum = 0.0f;
        for (int64_t lane = 0; lane < lanes; ++lane)
          exp_sum += cm::softmax_partial_exp_sum(row, cols, lane, lanes, row_max);
        for (int64_t lane = 0; lane < lanes; ++lane)
          cm::softmax_write(row, got.data() + r * cols, cols, lane, lanes, row_max, exp_sum);
      }
      expect_close(got, want, 1e-7f, 1e-5f);
    }
  }
}

TEST(CudaHostKernels, SoftmaxPartialMaxOfEmptyLaneIsNeutral) {
  const float row[2] = {-7.0f, -3.0f};
  // 4 lanes over 2 values: lanes 2 and 3 see nothing and must not change the maximum.
  EXPECT_EQ(cm::softmax_partial_max(row, 2, 3, 4), cm::kLowestFloat);
  EXPECT_EQ(cm::max_value(cm::softmax_partial_max(row, 2, 1, 4), cm::softmax_partial_max(row, 2, 3, 4)), -3.0f);
  EXPECT_EQ(cm::softmax_partial_exp_sum(row, 2, 3, 4, -3.0f), 0.0f);
}

// --- data gradients ----------------------------------------------------------------------------
// Each backward kernel's math, run the way its .cu runs it, both ways: overwriting a dx filled
// with NaN (an element the mapping misses stays NaN and fails) and accumulating into a dx that
// holds values, against the reference plus the reference backend's accumulate rule (dx + ref).

// `gradient_of(i)` is what the kernel's thread for dx element i stores. Accumulating allows a
// rounding more: the compiler may fuse a product in the gradient with the add (an FMA), which
// the reference backend's separate add never is.
template <typename F>
void expect_backward_both_ways(const std::vector<float>& want, F gradient_of, float atol, float rtol) {
  const int64_t count = static_cast<int64_t>(want.size());
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
    const float add_atol = accumulate ? atol + 1e-6f : atol, add_rtol = accumulate ? rtol + 1e-6f : rtol;
    const std::vector<float> initial =
        accumulate ? random_values(want.size(), 99) : std::vector<float>(want.size(), NAN);
    std::vector<float> got = initial, expected(want.size());
    for (int64_t i = 0; i < count; ++i) expected[i] = accumulate ? initial[i] + want[i] : want[i];
    for_each_index(count, [&](int64_t i) { cm::store_gradient(&got[i], gradient_of(i), accumulate); });
    expect_close(got, expected, add_atol, add_rtol);
  }
}

TEST(CudaHostKernels, StoreGradientOverwritesWithoutReadingOrAdds) {
  float dx = NAN;
  cm::store_gradient(&dx, 2.5f, false);  // the old value is never read: NaN does not leak
  EXPECT_EQ(dx, 2.5f);
  cm::store_gradient(&dx, 0.25f, true);
  EXPECT_EQ(dx, 2.75f);
}

TEST(CudaHostKernels, ReluBackwardMatchesReference) {
  std::vector<float> y = random_values(101, 40), dy = random_values(104, 41);
  y.push_back(0.0f);  // the subgradient at 0 is 0
  y.push_back(-0.0f);
  y.push_back(NAN);  // `y > 0` is false for NaN: no gradient, as in the reference
  const int64_t n = static_cast<int64_t>(y.size());
  std::vector<float> want(n);
  reference::relu_backward_data(n, y.data(), dy.data(), want.data());
  expect_backward_both_ways(want, [&](int64_t i) { return cm::relu_backward_value(y[i], dy[i]); }, 0.0f, 0.0f);
}

TEST(CudaHostKernels, AddBackwardIsDy) {
  const int64_t n = 257;
  const std::vector<float> dy = random_values(n, 42);
  std::vector<float> want(n);
  reference::add_backward_data(n, dy.data(), want.data());
  expect_backward_both_ways(want, [&](int64_t i) { return dy[i]; }, 0.0f, 0.0f);
}

TEST(CudaHostKernels, BatchNormBackwardMatchesReference) {
  const int64_t batch = 3, channels = 5, spatial = 7 * 3, count = batch * channels * spatial;
  const std::vector<float> dy = random_values(count, 43), gamma = random_values(channels, 44),
                           var = random_values(channels, 45, 0.01f, 3.0f);
  const float eps = 1e-3f;
  std::vector<float> want(count);
  reference::batch_norm_backward_data(batch, channels, spatial, dy.data(), gamma.data(), var.data(), eps,
                                      want.data());
  expect_backward_both_ways(
      want,
      [&](int64_t i) {
        const int64_t c = cm::channel_of(i, channels, spatial);
        return dy[i] * cm::batch_norm_gradient_scale(gamma[c], var[c], eps);
      },
      0.0f, 0.0f);  // the reference's operations in its order
}

TEST(CudaHostKernels, ChannelAffineBackwardMatchesReference) {
  const int64_t batch = 2, channels = 3, spatial = 9 * 11, count = batch * channels * spatial;
  const std::vector<float> scale = {0.458f, 0.448f, 0.45f}, shift = {-0.03f, -0.088f, -0.188f};
  cm::ChannelAffineConstants k{};
  for (int64_t c = 0; c < channels; ++c) k.scale[c] = scale[c], k.shift[c] = shift[c];
  const std::vector<float> dy = random_values(count, 46);
  std::vector<float> want(count);
  reference::channel_affine_backward_data(batch, channels, spatial, dy.data(), scale.data(), want.data());
  expect_backward_both_ways(
      want,
      [&](int64_t i) { return cm::channel_affine_gradient_value(k, cm::channel_of(i, channels, spatial), dy[i]); },
      0.0f, 0.0f);
}

TEST(CudaHostKernels, ZeroPadShortcutBackwardGatherMatchesReference) {
  for (const ZeroPadCase& k : kZeroPadCases) {
    SCOPED_TRACE(testing::Message() << "channels " << k.channels << " input " << k.h << "x" << k.w << " stride "
                                    << k.stride);
    const ZeroPadShortcutOp op{k.stride, k.before, k.after};
    const int64_t batch = 3;
    const cm::ZeroPadShortcutGeometry g = zero_pad_geometry(k);
    const std::vector<float> dy = random_values(batch * g.out_channels * g.out_h * g.out_w, 47);
    std::vector<float> want(batch * k.channels * k.h * k.w);
    reference::zero_pad_shortcut_backward_data(op, batch, k.channels, k.h, k.w, dy.data(), want.data());
    expect_backward_both_ways(
        want,
        [&](int64_t i) {
          const int64_t source = cm::zero_pad_shortcut_gradient_source_index(g, i);
          EXPECT_LT(source, static_cast<int64_t>(dy.size()));
          // The gather inverts the forward's index map on the pixels it reads.
          if (source >= 0) {
            EXPECT_EQ(cm::zero_pad_shortcut_source_index(g, source), i);
          }
          return source >= 0 ? dy[source] : 0.0f;
        },
        0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, ClipBackwardMatchesReference) {
  const ClipOp op{0, 6};
  std::vector<float> y = random_values(101, 73, 0.0f, 6.0f), dy = random_values(104, 74);
  y.push_back(0.0f);  // at either bound the gradient is 0
  y.push_back(6.0f);
  y.push_back(NAN);  // both comparisons are false for NaN: no gradient, as in the reference
  const int64_t n = static_cast<int64_t>(y.size());
  std::vector<float> want(n);
  reference::clip_backward_data(op, n, y.data(), dy.data(), want.data());
  expect_backward_both_ways(want, [&](int64_t i) { return cm::clip_backward_value(y[i], dy[i], op.min, op.max); },
                            0.0f, 0.0f);
}

TEST(CudaHostKernels, SliceBackwardGatherMatchesReference) {
  for (const SliceCase& k : kSliceCases) {
    SCOPED_TRACE(testing::Message() << "input " << k.channels << "x" << k.h << "x" << k.w);
    const int64_t batch = 3;
    const cm::SliceGeometry g = slice_geometry(k);
    const std::vector<float> dy = random_values(batch * g.out[0] * g.out[1] * g.out[2], 75);
    std::vector<float> want(batch * k.channels * k.h * k.w);
    reference::slice_backward_data(k.op, batch, k.channels, k.h, k.w, dy.data(), want.data());
    expect_backward_both_ways(
        want,
        [&](int64_t i) {
          const int64_t source = cm::slice_gradient_source_index(g, i);
          EXPECT_LT(source, static_cast<int64_t>(dy.size()));
          // The gather inverts the forward's index map on the cells it reads.
          if (source >= 0) {
            EXPECT_EQ(cm::slice_source_index(g, source), i);
          }
          return source >= 0 ? dy[source] : 0.0f;
        },
        0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, PadBackwardCropMatchesReference) {
  for (const PadCase& k : kPadCases) {
    SCOPED_TRACE(testing::Message() << "input " << k.channels << "x" << k.h << "x" << k.w);
    const int64_t batch = 3;
    const cm::PadOpGeometry g = pad_geometry(k);
    const std::vector<float> dy = random_values(batch * g.out[0] * g.out[1] * g.out[2], 76);
    std::vector<float> want(batch * k.channels * k.h * k.w);
    reference::pad_backward_data(k.op, batch, k.channels, k.h, k.w, dy.data(), want.data());
    expect_backward_both_ways(
        want,
        [&](int64_t i) {
          const int64_t source = cm::pad_op_gradient_source_index(g, i);
          EXPECT_EQ(cm::pad_op_source_index(g, source), i);  // the crop inverts the padding
          return dy[source];
        },
        0.0f, 0.0f);
  }
}

TEST(CudaHostKernels, GlobalAvgPoolBackwardMatchesReference) {
  const int64_t batch = 3, channels = 7;
  for (int64_t spatial : {1, 8 * 8, 7 * 7, 17 * 17}) {
    SCOPED_TRACE(testing::Message() << "spatial " << spatial);
    const std::vector<float> dy = random_values(batch * channels, 48);
    std::vector<float> want(batch * channels * spatial);
    reference::global_avg_pool_backward_data(batch, channels, spatial, dy.data(), want.data());
    expect_backward_both_ways(
        want, [&](int64_t i) { return cm::global_avg_pool_gradient_value(dy[i / spatial], spatial); }, 0.0f, 0.0f);
  }
}

// Pool geometries of the real models and awkward ones: overlapping windows, stride > kernel
// (cells no window reads), asymmetric padding, odd inputs.
struct PoolCase {
  int64_t kh, kw, sh, sw, top, left, bottom, right, h, w;
};
const PoolCase kPoolCases[] = {
    {3, 3, 1, 1, 1, 1, 1, 1, 8, 8},    // Inception's branch pool (stride 1, "same")
    {3, 3, 2, 2, 0, 0, 0, 0, 35, 35},  // InceptionV3's stride-2 valid pools
    {2, 2, 2, 2, 0, 0, 0, 0, 7, 9},    // stride 2, odd input (last row/col dropped)
    {3, 3, 2, 2, 0, 0, 1, 1, 6, 6},    // asymmetric "same", stride 2
    {5, 5, 3, 3, 0, 0, 0, 0, 17, 17},
    {1, 3, 1, 2, 0, 1, 0, 1, 4, 7},
    {1, 1, 3, 2, 0, 0, 0, 0, 7, 5},  // stride > kernel: some cells feed no window
    {3, 2, 1, 3, 2, 0, 2, 1, 5, 8},  // padding wider than one cell
};

cm::AvgPoolGeometry pool_case_geometry(const PoolCase& k, bool count_include_pad) {
  cm::AvgPoolGeometry g;
  g.in_h = k.h;
  g.in_w = k.w;
  g.out_h = (k.h + k.top + k.bottom - k.kh) / k.sh + 1;
  g.out_w = (k.w + k.left + k.right - k.kw) / k.sw + 1;
  g.kernel_h = k.kh;
  g.kernel_w = k.kw;
  g.stride_h = k.sh;
  g.stride_w = k.sw;
  g.pad_top = k.top;
  g.pad_left = k.left;
  g.count_include_pad = count_include_pad;
  return g;
}

#define POOL_CASE_TRACE(k)                                                                                  \
  SCOPED_TRACE(testing::Message() << "kernel " << (k).kh << "x" << (k).kw << " stride " << (k).sh << "x" << (k).sw \
                                  << " pads " << (k).top << "," << (k).left << "," << (k).bottom << ","      \
                                  << (k).right << " input " << (k).h << "x" << (k).w)

// The gather's window range is exactly the set of windows whose forward reads the cell.
TEST(CudaHostKernels, PoolWindowsContainingCellMatchBruteForce) {
  for (const PoolCase& k : kPoolCases) {
    POOL_CASE_TRACE(k);
    const cm::AvgPoolGeometry g = pool_case_geometry(k, true);
    for (int64_t h = 0; h < k.h; ++h)
      for (int64_t w = 0; w < k.w; ++w) {
        std::set<std::pair<int64_t, int64_t>> want, got;
        for (int64_t i = 0; i < g.out_h; ++i)
          for (int64_t j = 0; j < g.out_w; ++j) {
            const cm::PoolWindow win = cm::avg_pool_window(g, i, j);
            if (h >= win.h_begin && h < win.h_end && w >= win.w_begin && w < win.w_end) want.insert({i, j});
          }
        const cm::PoolOutputRange r = cm::pool_windows_containing(g, h, w);
        for (int64_t i = r.i_begin; i < r.i_end; ++i)
          for (int64_t j = r.j_begin; j < r.j_end; ++j) got.insert({i, j});
        ASSERT_EQ(got, want) << "cell " << h << "," << w;
      }
  }
}

TEST(CudaHostKernels, AvgPoolBackwardGatherMatchesReference) {
  for (const PoolCase& k : kPoolCases)
    for (bool include_pad : {true, false}) {
      POOL_CASE_TRACE(k);
      SCOPED_TRACE(testing::Message() << "count_include_pad " << include_pad);
      AvgPoolOp op;
      op.kernel_h = k.kh;
      op.kernel_w = k.kw;
      op.stride_h = k.sh;
      op.stride_w = k.sw;
      op.pad_top = k.top;
      op.pad_left = k.left;
      op.pad_bottom = k.bottom;
      op.pad_right = k.right;
      op.count_include_pad = include_pad;
      const cm::AvgPoolGeometry g = pool_case_geometry(k, include_pad);
      const int64_t planes = 2 * 3;  // batch 2, 3 channels
      const std::vector<float> dy = random_values(planes * g.out_h * g.out_w, 49);
      std::vector<float> want(planes * k.h * k.w);
      reference::avg_pool_backward_data(op, 2, 3, k.h, k.w, dy.data(), g.out_h, g.out_w, want.data());
      // avg_pool.cu's backward mapping: one thread per input cell.
      expect_backward_both_ways(
          want,
          [&](int64_t cell) {
            const int64_t plane = cell / (k.h * k.w), rem = cell % (k.h * k.w);
            return cm::avg_pool_gradient_value(g, dy.data() + plane * g.out_h * g.out_w, rem / k.w, rem % k.w);
          },
          0.0f, 0.0f);  // the same terms added in the same (row-major window) order
    }
}

TEST(CudaHostKernels, MaxPoolBackwardGatherMatchesReferenceWithTies) {
  for (const PoolCase& k : kPoolCases)
    for (bool ties : {false, true}) {
      POOL_CASE_TRACE(k);
      SCOPED_TRACE(ties ? "values with ties" : "distinct values");
      const MaxPoolOp op{k.kh, k.kw, k.sh, k.sw, k.top, k.left, k.bottom, k.right};
      const cm::AvgPoolGeometry g = pool_case_geometry(k, false);
      const int64_t planes = 2 * 3;
      std::vector<float> x = random_values(planes * k.h * k.w, 50);
      // Three levels only: most windows have several maxima, and only the first may win.
      if (ties)
        for (float& v : x) v = std::round(v);
      const std::vector<float> dy = random_values(planes * g.out_h * g.out_w, 51);
      std::vector<float> want(planes * k.h * k.w);
      reference::max_pool_backward_data(op, 2, 3, k.h, k.w, x.data(), dy.data(), g.out_h, g.out_w, want.data());
      expect_backward_both_ways(
          want,
          [&](int64_t cell) {
            const int64_t plane = cell / (k.h * k.w), rem = cell % (k.h * k.w);
            return cm::max_pool_gradient_value(g, x.data() + plane * k.h * k.w, dy.data() + plane * g.out_h * g.out_w,
                                               rem / k.w, rem % k.w);
          },
          0.0f, 0.0f);
    }
}

// The argmax the gather checks against is the cell the forward's maximum comes from.
TEST(CudaHostKernels, MaxPoolWindowArgmaxIsTheForwardMaximum) {
  for (const PoolCase& k : kPoolCases) {
    POOL_CASE_TRACE(k);
    const cm::AvgPoolGeometry g = pool_case_geometry(k, false);
    std::vector<float> x = random_values(k.h * k.w, 52);
    for (float& v : x) v = std::round(v);
    for (int64_t i = 0; i < g.out_h; ++i)
      for (int64_t j = 0; j < g.out_w; ++j) {
        const int64_t best = cm::max_pool_window_argmax(g, x.data(), i, j);
        ASSERT_GE(best, 0);  // every window of these cases holds an input cell
        EXPECT_EQ(x[best], cm::max_pool_value(g, x.data(), i, j));
      }
  }
}

TEST(CudaHostKernels, SoftmaxBackwardMatchesReference) {
  for (int64_t cols : {1, 10, 1000, 1001}) {
    const int64_t rows = 3;
    std::vector<float> logits = random_values(rows * cols, 53, -5.0f, 5.0f), y(rows * cols);
    reference::softmax_forward(rows, cols, logits.data(), y.data());
    const std::vector<float> dy = random_values(rows * cols, 54);
    std::vector<float> want(rows * cols);
    reference::softmax_backward_data(rows, cols, y.data(), dy.data(), want.data());
    for (int64_t lanes : kLaneCounts)
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(testing::Message() << "cols " << cols << " lanes " << lanes << " accumulate " << accumulate);
        const std::vector<float> initial =
            accumulate ? random_values(rows * cols, 55) : std::vector<float>(rows * cols, NAN);
        std::vector<float> got = initial, expected(rows * cols);
        for (int64_t i = 0; i < rows * cols; ++i) expected[i] = accumulate ? initial[i] + want[i] : want[i];
        // softmax.cu's backward: per row, the lanes' partial dot products, combined, then each
        // lane writes its elements.
        for (int64_t r = 0; r < rows; ++r) {
          const float* y_row = y.data() + r * cols;
          const float* dy_row = dy.data() + r * cols;
          float dot = 0.0f;
          for (int64_t lane = 0; lane < lanes; ++lane)
            dot += cm::softmax_backward_partial_dot(y_row, dy_row, cols, lane, lanes);
          for (int64_t lane = 0; lane < lanes; ++lane)
            cm::softmax_backward_write(y_row, dy_row, got.data() + r * cols, cols, lane, lanes, dot, accumulate);
        }
        expect_close(got, expected, 1e-6f, 1e-5f);
      }
  }
}

// The cuDNN data gradient of an asymmetrically padded convolution: the symmetric backward on
// the padded geometry (what cuDNN computes with the forward's descriptors), cropped back by
// pad_target_index, equals the reference backward of the asymmetric convolution.
TEST(CudaHostKernels, Conv2dBackwardAsymmetricPaddingAsSymmetricPlusCrop) {
  for (const AsymmetricConvCase& k : kAsymmetricConvCases) {
    SCOPED_TRACE(testing::Message() << "kernel " << k.kh << "x" << k.kw << " pads " << k.top << "," << k.left << ","
                                    << k.bottom << "," << k.right << " input " << k.h << "x" << k.w << " dilation "
                                    << k.dh << "x" << k.dw << " groups " << k.groups);
    const Conv2dOp op = asymmetric_conv_op(k);
    const int64_t batch = 3, planes = batch * op.in_channels;
    const int64_t out_h = (k.h + k.top + k.bottom - k.span_h()) / k.sh + 1,
                  out_w = (k.w + k.left + k.right - k.span_w()) / k.sw + 1;
    const std::vector<float> dy = random_values(batch * op.out_channels * out_h * out_w, 56),
                             weight = random_values(op.out_channels * (op.in_channels / op.groups) * k.kh * k.kw, 57);
    std::vector<float> want(planes * k.h * k.w);
    reference::conv2d_backward_data<float>(op, batch, k.h, k.w, dy.data(), weight.data(), out_h, out_w,
                                           want.data());

    // CudaConv2d's geometry: cuDNN gets min(pad) on each axis, the rest is explicit padding.
    const cm::PadGeometry g = explicit_padding(k);
    const Conv2dOp symmetric = symmetric_part(op);
    std::vector<float> padded_dx(planes * g.out_h * g.out_w);
    reference::conv2d_backward_data<float>(symmetric, batch, g.out_h, g.out_w, dy.data(), weight.data(), out_h,
                                           out_w, padded_dx.data());
    // conv2d_pad_input_backward_data's mapping: one thread per input element.
    expect_backward_both_ways(
        want,
        [&](int64_t i) {
          const int64_t target = cm::pad_target_index(g, i);
          EXPECT_EQ(cm::pad_source_index(g, target), i);  // the crop inverts the padding
          return padded_dx[target];
        },
        0.0f, 0.0f);  // the same products summed in the same order
  }
}

TEST(CudaHostKernels, ConcatBackwardSourceIndexMatchesReference) {
  const int64_t batch = 3, spatial = 7 * 5, total = 2 + 5 + 1;
  const std::vector<float> dy = random_values(batch * total * spatial, 58);
  int64_t offset = 0;
  for (int64_t part_channels : {2, 5, 1}) {
    SCOPED_TRACE(testing::Message() << "part of " << part_channels << " channels at " << offset);
    std::vector<float> want(batch * part_channels * spatial);
    reference::concat_backward_data(batch, part_channels, spatial, offset, total, dy.data(), want.data());
    cm::ConcatGeometry g;
    g.part_channels = part_channels;
    g.spatial = spatial;
    g.channel_offset = offset;
    g.total_channels = total;
    expect_backward_both_ways(want, [&](int64_t i) { return dy[cm::concat_gradient_source_index(g, i)]; }, 0.0f,
                              0.0f);
    offset += part_channels;
  }
}

// cuBLAS's column-major sgemm, written out: C = alpha * op(A) * op(B) + beta * C, with the
// leading-dimension rules cuBLAS enforces (it rejects a call that breaks them).
void column_major_sgemm(const cm::GemmCall& call, float alpha, const float* a, const float* b, float beta, float* c) {
  ASSERT_GE(call.lda, std::max<int64_t>(1, call.transpose_a ? call.k : call.m));
  ASSERT_GE(call.ldb, std::max<int64_t>(1, call.transpose_b ? call.n : call.k));
  ASSERT_GE(call.ldc, std::max<int64_t>(1, call.m));
  for (int64_t col = 0; col < call.n; ++col)
    for (int64_t row = 0; row < call.m; ++row) {
      float sum = 0.0f;
      for (int64_t p = 0; p < call.k; ++p) {
        const float av = call.transpose_a ? a[p + row * call.lda] : a[row + p * call.lda];
        const float bv = call.transpose_b ? b[col + p * call.ldb] : b[p + col * call.ldb];
        sum += av * bv;
      }
      float& out = c[row + col * call.ldc];
      out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;  // beta 0: C is not read
    }
}

// The sgemm operands dense.cu hands cuBLAS for the data gradient compute the reference's dx.
TEST(CudaHostKernels, DenseBackwardGemmOperandsMatchReference) {
  struct Case {
    int64_t batch, in, out;
  };
  for (const Case& k : {Case{3, 64, 10}, Case{5, 2048, 1000}, Case{1, 7, 3}, Case{4, 3, 7}}) {
    SCOPED_TRACE(testing::Message() << "batch " << k.batch << " in " << k.in << " out " << k.out);
    const std::vector<float> dy = random_values(k.batch * k.out, 59), w = random_values(k.out * k.in, 60);
    std::vector<float> want(k.batch * k.in);
    reference::dense_backward_data(k.batch, k.in, k.out, dy.data(), w.data(), want.data());
    const cm::GemmCall call = cm::dense_backward_data_gemm(k.batch, k.in, k.out);
    // The reference sums in the same order; the tolerance only absorbs FMA contraction.
    const float atol = 1e-6f * static_cast<float>(k.out), rtol = 1e-5f;
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(accumulate ? "accumulate (beta 1)" : "overwrite (beta 0)");
      const std::vector<float> initial =
          accumulate ? random_values(want.size(), 61) : std::vector<float>(want.size(), NAN);
      std::vector<float> got = initial, expected(want.size());
      for (size_t i = 0; i < want.size(); ++i) expected[i] = accumulate ? initial[i] + want[i] : want[i];
      column_major_sgemm(call, 1.0f, w.data(), dy.data(), accumulate ? 1.0f : 0.0f, got.data());
      expect_close(got, expected, atol, rtol);
    }
  }
}

TEST(CudaHostKernels, InterpolateMatchesReference) {
  const int64_t n = 1000;
  const std::vector<float> baseline = random_values(n, 62), x = random_values(n, 63);
  for (float alpha : {0.0f, 0.05f, 0.5f, 0.975f, 1.0f}) {
    SCOPED_TRACE(testing::Message() << "alpha " << alpha);
    std::vector<float> want(n), got(n);
    reference::interpolate(n, baseline.data(), x.data(), alpha, want.data());
    for_each_index(n, [&](int64_t i) { got[i] = cm::interpolate_value(baseline[i], x[i], alpha); });
    expect_close(got, want, 1e-6f, 1e-6f);  // one rounding apart at most (FMA contraction)
    if (alpha == 0.0f) {
      EXPECT_EQ(got, baseline);  // the baseline step is the baseline exactly
    }
  }
}

TEST(CudaHostKernels, ConductanceLanesMatchReference) {
  const int64_t channels = 7;
  for (int64_t spatial : {1, 8 * 8, 17 * 17, 35 * 35}) {
    const int64_t count = channels * spatial;
    const std::vector<float> grad = random_values(count, 64), upper = random_values(count, 65),
                             lower = random_values(count, 66), sums0 = random_values(channels, 67),
                             map0 = random_values(count, 68);
    for (bool with_map : {true, false})
      for (int64_t lanes : kLaneCounts) {
        SCOPED_TRACE(testing::Message() << "spatial " << spatial << " lanes " << lanes << " map " << with_map);
        std::vector<float> want_sums = sums0, want_map = map0, got_sums = sums0, got_map = map0;
        reference::conductance_accumulate(channels, spatial, grad.data(), upper.data(), lower.data(),
                                          want_sums.data(), with_map ? want_map.data() : nullptr);
        // conductance.cu: one block per channel, each lane's double partial sum, combined.
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t offset = c * spatial;
          double sum = 0.0;
          for (int64_t lane = 0; lane < lanes; ++lane)
            sum += cm::conductance_partial_sum(grad.data() + offset, upper.data() + offset, lower.data() + offset,
                                               with_map ? got_map.data() + offset : nullptr, spatial, lane, lanes);
          got_sums[c] += static_cast<float>(sum);
        }
        expect_close(got_sums, want_sums, 1e-6f, 1e-6f);  // double sums: float rounding only
        expect_close(got_map, want_map, 1e-6f, 1e-6f);    // untouched without a map
      }
  }
}


// --- bf16 convolutions (conv2d_bf16.cu, CudaConv2d in Precision::BF16) ---------------------

float float_of_pattern(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

TEST(CudaHostKernels, Bf16RoundsToNearestEven) {
  EXPECT_EQ(cm::bf16_bits_of(1.0f), 0x3f80);
  EXPECT_EQ(cm::bf16_bits_of(-2.5f), 0xc020);
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x3f808000u)), 0x3f80);  // a tie: to the even 0x3f80
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x3f818000u)), 0x3f82);  // a tie: to the even 0x3f82
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x3f808001u)), 0x3f81);  // just past the tie
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x3f807fffu)), 0x3f80);  // just below it
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x00018000u)), 0x0002);  // subnormals round too
  EXPECT_EQ(cm::bf16_bits_of(0.0f), 0x0000);
  EXPECT_EQ(cm::bf16_bits_of(-0.0f), 0x8000);
  EXPECT_EQ(cm::bf16_bits_of(INFINITY), 0x7f80);
  EXPECT_EQ(cm::bf16_bits_of(-INFINITY), 0xff80);
  EXPECT_EQ(cm::bf16_bits_of(float_of_pattern(0x7f7fffffu)), 0x7f80);  // past the largest finite bf16
  EXPECT_TRUE(std::isnan(cm::float_of_bf16_bits(cm::bf16_bits_of(NAN))));
  // A NaN whose payload is only in the low half would round to infinity if treated as a number.
  EXPECT_TRUE(std::isnan(cm::float_of_bf16_bits(cm::bf16_bits_of(float_of_pattern(0x7f800001u)))));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f), exponent(-30.0f, 30.0f);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::ldexp(mantissa(rng), static_cast<int>(exponent(rng)));
    const float r = cm::float_of_bf16_bits(cm::bf16_bits_of(x));
    ASSERT_LE(std::fabs(r - x), std::ldexp(1.0f, std::ilogb(x) - 8)) << x;  // half an ulp (8-bit mantissa)
    ASSERT_EQ(cm::bf16_bits_of(r), cm::bf16_bits_of(x)) << x;       // bf16 values are fixed points
  }
}

TEST(CudaHostKernels, NhwcAndKrscIndicesAreTheTransposes) {
  const int64_t n = 2, c = 3, h = 4, w = 5;
  std::set<int64_t> seen;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t nchw = ((a * c + b) * h + y) * w + x, nhwc = ((a * h + y) * w + x) * c + b;
          EXPECT_EQ(cm::nhwc_index_of(nchw, c, h * w), nhwc);
          // Weights: O = a, I = b, kh = y, kw = x.
          EXPECT_EQ(cm::krsc_index_of(nchw, c, h * w), nhwc);
          seen.insert(nhwc);
        }
  EXPECT_EQ(seen.size(), static_cast<size_t>(n * c * h * w));
}

// CudaConv2d's bf16 path with cuDNN replaced by a plain NHWC x KRSC convolution (what cuDNN
// computes from those layouts): the padded bf16 NHWC input (conv2d_to_bf16_nhwc's body), the
// KRSC weights (set_weights), and the epilogue's NHWC read give the reference convolution of the
// bf16-rounded input and weights; the data gradient's crop reads back what the conversion wrote.
TEST(CudaHostKernels, Conv2dBf16LayoutsMatchReference) {
  for (const AsymmetricConvCase& k : kAsymmetricConvCases) {
    SCOPED_TRACE(testing::Message() << "kernel " << k.kh << "x" << k.kw << " pads " << k.top << "," << k.left << ","
                                    << k.bottom << "," << k.right << " groups " << k.groups);
    const Conv2dOp op = asymmetric_conv_op(k);
    const int64_t batch = 2, cg = op.in_channels / op.groups, kg = op.out_channels / op.groups;
    const int64_t out_h = (k.h + k.top + k.bottom - k.span_h()) / k.sh + 1,
                  out_w = (k.w + k.left + k.right - k.span_w()) / k.sw + 1;
    std::vector<float> x = random_values(batch * op.in_channels * k.h * k.w, 31),
                       weight = random_values(op.out_channels * cg * k.kh * k.kw, 32);
    auto rounded = [](std::vector<float> v) {
      for (float& e : v) e = cm::float_of_bf16_bits(cm::bf16_bits_of(e));
      return v;
    };
    std::vector<float> want(batch * op.out_channels * out_h * out_w);
    reference::conv2d_forward<float>(op, batch, k.h, k.w, rounded(x).data(), rounded(weight).data(), nullptr, out_h,
                                     out_w, want.data());

    const cm::PadGeometry g = explicit_padding(k);
    const int64_t padded_spatial = g.out_h * g.out_w;
    std::vector<uint16_t> x16(batch * op.in_channels * padded_spatial);
    for_each_index(static_cast<int64_t>(x16.size()), [&](int64_t i) {
      const int64_t source = cm::pad_source_index(g, i);
      x16[cm::nhwc_index_of(i, op.in_channels, padded_spatial)] = cm::bf16_bits_of(source >= 0 ? x[source] : 0.0f);
    });
    std::vector<uint16_t> w16(weight.size());
    for (size_t i = 0; i < weight.size(); ++i)
      w16[cm::krsc_index_of(static_cast<int64_t>(i), cg, k.kh * k.kw)] = cm::bf16_bits_of(weight[i]);
    const Conv2dOp sym = symmetric_part(op);
    std::vector<float> y_nhwc(want.size());
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t oy = 0; oy < out_h; ++oy)
        for (int64_t ox = 0; ox < out_w; ++ox)
          for (int64_t o = 0; o < op.out_channels; ++o) {
            float sum = 0.0f;
            for (int64_t r = 0; r < k.kh; ++r)
              for (int64_t c = 0; c < k.kw; ++c) {
                const int64_t iy = oy * k.sh - sym.pad_top + r * k.dh, ix = ox * k.sw - sym.pad_left + c * k.dw;
                if (iy < 0 || iy >= g.out_h || ix < 0 || ix >= g.out_w) continue;
                for (int64_t i = 0; i < cg; ++i) {
                  const int64_t channel = (o / kg) * cg + i;
                  sum += cm::float_of_bf16_bits(x16[((n * g.out_h + iy) * g.out_w + ix) * op.in_channels + channel]) *
                         cm::float_of_bf16_bits(w16[((o * k.kh + r) * k.kw + c) * cg + i]);
                }
              }
            y_nhwc[((n * out_h + oy) * out_w + ox) * op.out_channels + o] = sum;
          }
    std::vector<float> got(want.size());
    for_each_index(static_cast<int64_t>(got.size()), [&](int64_t i) {
      got[i] = y_nhwc[cm::nhwc_index_of(i, op.out_channels, out_h * out_w)];
    });
    expect_close(got, want, 1e-5f, 1e-5f);

    // The data gradient's crop (conv2d_crop_from_bf16_nhwc) reads each input cell where the
    // conversion put it.
    std::vector<float> cropped(x.size());
    for_each_index(static_cast<int64_t>(cropped.size()), [&](int64_t i) {
      cropped[i] = cm::float_of_bf16_bits(
          x16[cm::nhwc_index_of(cm::pad_target_index(g, i), op.in_channels, padded_spatial)]);
    });
    expect_close(cropped, rounded(x), 0.0f, 0.0f);
  }
}


// conv2d_set_filters' body: writing some filters through filter_weight_index into weights laid
// out by set_weights (OIHW, or KRSC bf16) gives the layout of the patched OIHW weights.
TEST(CudaHostKernels, SetFiltersPatchesTheFiltersInEitherLayout) {
  const int64_t out = 6, per_group = 4, kernel_spatial = 3 * 2, size = per_group * kernel_spatial;
  const std::vector<float> w = random_values(out * size, 51), fresh = random_values(2 * size, 52);
  const std::vector<int64_t> filters{4, 1};
  const std::vector<float> patched = patch_filters(w, size, filters, fresh).patched;
  for (int64_t f = 0; f < out; ++f)  // OIHW: filter f's values are one contiguous run
    for (int64_t j = 0; j < size; ++j)
      ASSERT_EQ(cm::filter_weight_index(cm::FilterLayout{per_group, kernel_spatial, false}, f, j), f * size + j);
  for (bool krsc : {false, true}) {
    SCOPED_TRACE(krsc ? "KRSC bf16" : "OIHW fp32");
    const cm::FilterLayout layout{per_group, kernel_spatial, krsc};
    auto laid_out = [&](const std::vector<float>& oihw) {  // what set_weights uploads
      std::vector<float> v(oihw.size());
      for (int64_t i = 0; i < static_cast<int64_t>(oihw.size()); ++i)
        v[cm::filter_weight_index(layout, i / size, i % size)] =
            krsc ? cm::float_of_bf16_bits(cm::bf16_bits_of(oihw[i])) : oihw[i];
      return v;
    };
    std::vector<float> weights = laid_out(w);
    for_each_index(static_cast<int64_t>(fresh.size()), [&](int64_t i) {
      const float v = fresh[i];
      weights[cm::filter_weight_index(layout, filters[i / size], i % size)] =
          krsc ? cm::float_of_bf16_bits(cm::bf16_bits_of(v)) : v;
    });
    EXPECT_EQ(weights, laid_out(patched));
  }
}

}  // namespace
}  // namespace veto
