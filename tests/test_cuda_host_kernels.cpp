// The per-element math of the custom CUDA kernels (kernels/cuda/element_math.h), run on the
// host against kernels/reference. Runs everywhere, GPU or not (DESIGN.md ladder point 5): the
// .cu files only decide which thread computes which element with these same functions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/element_math.h"
#include "kernels/reference/add.h"
#include "kernels/reference/avg_pool.h"
#include "kernels/reference/batch_norm.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/global_avg_pool.h"
#include "kernels/reference/relu.h"
#include "kernels/reference/softmax.h"
#include "kernels/reference/zero_pad_shortcut.h"

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

// The asymmetric-padding strategy of the cuDNN convolution: explicit zero padding of the
// excess (pad_source_index) + symmetric padding of the smaller side equals the asymmetric
// reference convolution.
TEST(CudaHostKernels, Conv2dAsymmetricPaddingAsExplicitPadPlusSymmetric) {
  struct Case {
    int64_t kh, kw, sh, sw, top, left, bottom, right, h, w;
  };
  const Case cases[] = {
      {3, 3, 2, 2, 0, 0, 1, 1, 8, 8},  // TensorFlow "same", stride 2, even input
      {3, 3, 2, 2, 1, 0, 1, 1, 7, 9},  // asymmetric in width only
      {1, 7, 1, 1, 0, 3, 0, 3, 5, 6},  // 1x7, symmetric (no copy)
      {7, 1, 1, 1, 3, 0, 3, 0, 6, 5},  // 7x1
      {2, 2, 1, 1, 0, 0, 1, 1, 4, 5},  // even kernel "same"
      {3, 3, 1, 1, 2, 0, 1, 3, 5, 4},  // both sides, both directions
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << "kernel " << k.kh << "x" << k.kw << " pads " << k.top << "," << k.left << ","
                                    << k.bottom << "," << k.right << " input " << k.h << "x" << k.w);
    Conv2dOp op;
    op.in_channels = 3;
    op.out_channels = 2;
    op.kernel_h = k.kh;
    op.kernel_w = k.kw;
    op.stride_h = k.sh;
    op.stride_w = k.sw;
    op.pad_top = k.top;
    op.pad_left = k.left;
    op.pad_bottom = k.bottom;
    op.pad_right = k.right;
    const int64_t batch = 3;
    const int64_t out_h = (k.h + k.top + k.bottom - k.kh) / k.sh + 1,
                  out_w = (k.w + k.left + k.right - k.kw) / k.sw + 1;
    const std::vector<float> x = random_values(batch * op.in_channels * k.h * k.w, 13),
                             weight = random_values(op.out_channels * op.in_channels * k.kh * k.kw, 14);
    std::vector<float> want(batch * op.out_channels * out_h * out_w);
    reference::conv2d_forward<float>(op, batch, k.h, k.w, x.data(), weight.data(), nullptr, out_h, out_w,
                                     want.data());

    // What CudaConv2d does: cuDNN gets min(pad) on each axis, the rest is an explicit copy.
    const int64_t sym_h = std::min(k.top, k.bottom), sym_w = std::min(k.left, k.right);
    cm::PadGeometry g;
    g.in_h = k.h;
    g.in_w = k.w;
    g.pad_top = k.top - sym_h;
    g.pad_left = k.left - sym_w;
    g.out_h = k.h + (k.top - sym_h) + (k.bottom - sym_h);
    g.out_w = k.w + (k.left - sym_w) + (k.right - sym_w);
    std::vector<float> padded(batch * op.in_channels * g.out_h * g.out_w);
    for_each_index(static_cast<int64_t>(padded.size()), [&](int64_t i) {
      const int64_t source = cm::pad_source_index(g, i);
      padded[i] = source >= 0 ? x[source] : 0.0f;
    });
    Conv2dOp symmetric = op;
    symmetric.pad_top = symmetric.pad_bottom = sym_h;
    symmetric.pad_left = symmetric.pad_right = sym_w;
    ASSERT_EQ((g.out_h + 2 * sym_h - k.kh) / k.sh + 1, out_h);
    ASSERT_EQ((g.out_w + 2 * sym_w - k.kw) / k.sw + 1, out_w);
    std::vector<float> got(want.size());
    reference::conv2d_forward<float>(symmetric, batch, g.out_h, g.out_w, padded.data(), weight.data(), nullptr,
                                     out_h, out_w, got.data());
    expect_close(got, want, 0.0f, 0.0f);  // the same products in the same order
  }
}

TEST(CudaHostKernels, ZeroPadShortcutIndexMappingMatchesReference) {
  struct Case {
    int64_t channels, h, w, stride, before, after;
  };
  const Case cases[] = {{16, 32, 32, 2, 8, 8}, {3, 7, 7, 2, 1, 2}, {5, 6, 5, 3, 0, 4}, {4, 5, 5, 1, 2, 0}};
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << "channels " << k.channels << " input " << k.h << "x" << k.w << " stride "
                                    << k.stride);
    ZeroPadShortcutOp op;
    op.stride = k.stride;
    op.pad_channels_before = k.before;
    op.pad_channels_after = k.after;
    const int64_t batch = 3;
    cm::ZeroPadShortcutGeometry g;
    g.channels = k.channels;
    g.in_h = k.h;
    g.in_w = k.w;
    g.out_channels = k.channels + k.before + k.after;
    g.out_h = (k.h + k.stride - 1) / k.stride;
    g.out_w = (k.w + k.stride - 1) / k.stride;
    g.stride = k.stride;
    g.pad_channels_before = k.before;
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

}  // namespace
}  // namespace veto
