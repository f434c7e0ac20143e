// Every reference backward_data kernel (kernels/reference, the spec the fast kernels are
// tested against) checked against central finite differences in double: for a random r,
// L(x) = sum(r * f(x)) has dL/dx = backward(dy = r), and dL/dx_i is approximated by
// (L(x + h e_i) - L(x - h e_i)) / 2h. Inputs of ReLU and max pool stay away from kinks and
// ties, clip's away from its bounds; the tie and bound rules are checked by hand. Also the
// attribution kernels by hand-computed values, and the reference backend's `accumulate` path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

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
#include "runtime/backend.h"
#include "runtime/ops.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

using Vec = std::vector<double>;

Vec random_doubles(int64_t n, uint32_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 rng(seed);
  Vec v(static_cast<size_t>(n));
  for (double& x : v) x = lo + (hi - lo) * static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  return v;
}

constexpr double kStep = 1e-6;
// Rounding in the difference quotient is about 1e-16 * |y| / h = 1e-10 for values of order
// one (the difference is taken per output, so outputs that do not depend on x_i cancel
// exactly); the tolerance leaves room for that and nothing more.
constexpr double kRelTol = 1e-6, kAbsTol = 1e-8;

// f(x) -> y; backward(dy) -> dx, overwriting dx.
using Forward = std::function<void(const double* x, double* y)>;
using Backward = std::function<void(const double* dy, double* dx)>;

// Checks backward(r) against the central difference of L(x) = sum(r * f(x)) at every input
// (or at `max_checks` of them, evenly spread, for large inputs).
void check_gradient(const std::string& what, Vec x, int64_t out_count, const Forward& forward,
                    const Backward& backward, uint32_t seed, int64_t max_checks = 5000) {
  const int64_t n = static_cast<int64_t>(x.size());
  const Vec r = random_doubles(out_count, seed);
  Vec dx(x.size(), std::numeric_limits<double>::quiet_NaN());
  backward(r.data(), dx.data());

  Vec plus(static_cast<size_t>(out_count)), minus(static_cast<size_t>(out_count));
  const int64_t checks = std::min(n, max_checks);
  int64_t bad = 0, worst = -1;
  double worst_excess = -1, worst_fd = 0;
  for (int64_t k = 0; k < checks; ++k) {
    const int64_t i = checks == n ? k : k * (n - 1) / (checks - 1);
    const double xi = x[i];
    x[i] = xi + kStep;
    forward(x.data(), plus.data());
    x[i] = xi - kStep;
    forward(x.data(), minus.data());
    x[i] = xi;
    double diff = 0;
    for (int64_t o = 0; o < out_count; ++o) diff += r[o] * (plus[o] - minus[o]);
    const double fd = diff / (2 * kStep);
    const double err = std::fabs(dx[i] - fd), allowed = std::max(kAbsTol, kRelTol * std::fabs(fd));
    if (err <= allowed) continue;  // false for NaN: an unwritten dx fails
    ++bad;
    const double excess = std::isnan(err) ? HUGE_VAL : err / allowed;
    if (excess > worst_excess) worst_excess = excess, worst = i, worst_fd = fd;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << checks << " gradients off; worst at " << worst << ": backward "
                    << dx[worst >= 0 ? worst : 0] << ", finite difference " << worst_fd;
  // Every input affects L somewhere in these cases: an all-zero gradient is not a pass.
  double norm = 0;
  for (double g : dx) norm += std::isnan(g) ? 0 : std::fabs(g);
  EXPECT_GT(norm, 0) << what << ": zero gradient";
}

Conv2dOp conv(int64_t in, int64_t out, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pl,
              int64_t pb, int64_t pr) {
  Conv2dOp op;
  op.in_channels = in;
  op.out_channels = out;
  op.kernel_h = kh;
  op.kernel_w = kw;
  op.stride_h = sh;
  op.stride_w = sw;
  op.pad_top = pt;
  op.pad_left = pl;
  op.pad_bottom = pb;
  op.pad_right = pr;
  return op;
}

Conv2dOp grouped(Conv2dOp op, int64_t groups, int64_t dilation_h = 1, int64_t dilation_w = 1) {
  op.groups = groups;
  op.dilation_h = dilation_h;
  op.dilation_w = dilation_w;
  return op;
}

TEST(BackwardFiniteDifference, Conv2d) {
  struct Case {
    std::string name;
    Conv2dOp op;
    Shape input;
  };
  const std::vector<Case> cases{
      {"3x3 pad 1", conv(3, 4, 3, 3, 1, 1, 1, 1, 1, 1), {2, 3, 6, 7}},
      {"3x3 stride 2 pad 1", conv(3, 4, 3, 3, 2, 2, 1, 1, 1, 1), {2, 3, 7, 8}},
      {"3x3 stride 2 asymmetric pads t1 l0 b2 r1", conv(2, 3, 3, 3, 2, 2, 1, 0, 2, 1), {1, 2, 7, 6}},
      {"tf-same 3x3 stride 2 (pads only after)", conv(2, 3, 3, 3, 2, 2, 0, 0, 1, 1), {2, 2, 8, 8}},
      {"1x7 pad (0,3)", conv(3, 2, 1, 7, 1, 1, 0, 3, 0, 3), {1, 3, 5, 9}},
      {"7x1 pad (3,0)", conv(3, 2, 7, 1, 1, 1, 3, 0, 3, 0), {1, 3, 9, 5}},
      {"3x3 stride 2 valid on 9x9", conv(2, 3, 3, 3, 2, 2, 0, 0, 0, 0), {2, 2, 9, 9}},
      {"1x1 stride 2 projection", conv(4, 3, 1, 1, 2, 2, 0, 0, 0, 0), {2, 4, 6, 6}},
      {"stride 2x1", conv(2, 2, 3, 3, 2, 1, 1, 1, 1, 1), {1, 2, 6, 5}},
      {"2 groups 3x3 pad 1", grouped(conv(4, 6, 3, 3, 1, 1, 1, 1, 1, 1), 2), {2, 4, 6, 7}},
      {"depthwise 3x3 stride 2", grouped(conv(3, 3, 3, 3, 2, 2, 1, 1, 1, 1), 3), {1, 3, 7, 8}},
      {"depthwise multiplier 2", grouped(conv(2, 4, 3, 3, 1, 1, 1, 1, 1, 1), 2), {1, 2, 5, 6}},
      {"dilation 2 pad 2", grouped(conv(2, 3, 3, 3, 1, 1, 2, 2, 2, 2), 1, 2, 2), {1, 2, 7, 8}},
      {"dilation (2,3) stride 2 pads t1 l0 b2 r1", grouped(conv(2, 3, 3, 3, 2, 2, 1, 0, 2, 1), 1, 2, 3),
       {1, 2, 9, 10}},
      {"2 groups dilation 2 stride 2", grouped(conv(4, 2, 3, 3, 2, 2, 2, 2, 2, 2), 2, 2, 2), {2, 4, 8, 8}},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const Shape out = infer_shape(OpParams(c.op), {c.input}, c.name);
    seed += 4;
    const Vec w = random_doubles(c.op.out_channels * (c.op.in_channels / c.op.groups) * c.op.kernel_h * c.op.kernel_w,
                                 seed);
    const Vec bias = random_doubles(c.op.out_channels, seed + 1);
    const int64_t n = c.input[0], h = c.input[2], wd = c.input[3];
    check_gradient(
        "conv2d " + c.name, random_doubles(c.input.numel(), seed + 2), out.numel(),
        [&](const double* x, double* y) {
          reference::conv2d_forward<double>(c.op, n, h, wd, x, w.data(), bias.data(), out[2], out[3], y);
        },
        [&](const double* dy, double* dx) {
          reference::conv2d_backward_data<double>(c.op, n, h, wd, dy, w.data(), out[2], out[3], dx);
        },
        seed + 3);
  }
}

// A stride-2 valid convolution on an even size never reads the last row and column: their
// gradient is exactly zero (the finite difference above cannot tell 0 from "unwritten").
TEST(BackwardFiniteDifference, Conv2dUnreadInputsGetZero) {
  const Conv2dOp op = conv(1, 1, 3, 3, 2, 2, 0, 0, 0, 0);
  const Vec w(9, 1.0), dy(4 * 4, 1.0);  // 10x10 -> 4x4
  Vec dx(100, std::numeric_limits<double>::quiet_NaN());
  reference::conv2d_backward_data<double>(op, 1, 10, 10, dy.data(), w.data(), 4, 4, dx.data());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(dx[9 * 10 + i], 0.0);
    EXPECT_EQ(dx[i * 10 + 9], 0.0);
  }
  EXPECT_EQ(dx[0], 1.0);           // read by output (0,0) only
  EXPECT_EQ(dx[2 * 10 + 2], 4.0);  // shared by four windows
}

// Dilation 2 reads every other cell: a 2x2 kernel with stride 3 on 5x5 reads (0,0), (0,2),
// (2,0), (2,2) only; (1,1), inside the window's span, gets exactly 0.
TEST(BackwardFiniteDifference, Conv2dDilatedTapsSkipCells) {
  const Conv2dOp op = grouped(conv(1, 1, 2, 2, 3, 3, 0, 0, 0, 0), 1, 2, 2);
  ASSERT_EQ(infer_shape(OpParams(op), {Shape{1, 1, 5, 5}}, "conv"), (Shape{1, 1, 1, 1}));
  const Vec w{1, 2, 3, 4}, dy{1};
  Vec dx(25, std::numeric_limits<double>::quiet_NaN());
  reference::conv2d_backward_data<double>(op, 1, 5, 5, dy.data(), w.data(), 1, 1, dx.data());
  Vec want(25, 0.0);
  want[0] = 1, want[2] = 2, want[10] = 3, want[12] = 4;
  EXPECT_EQ(dx, want);
}

TEST(BackwardFiniteDifference, BatchNorm) {
  const int64_t n = 2, c = 3, s = 20;
  const Vec gamma = random_doubles(c, 2, 0.5, 1.5), beta = random_doubles(c, 3), mean = random_doubles(c, 4);
  const Vec var = random_doubles(c, 5, 0.1, 2.0);
  const double eps = 1e-3;
  check_gradient(
      "batch_norm", random_doubles(n * c * s, 6), n * c * s,
      [&](const double* x, double* y) {
        reference::batch_norm_forward<double>(n, c, s, x, gamma.data(), beta.data(), mean.data(), var.data(), eps, y);
      },
      [&](const double* dy, double* dx) {
        reference::batch_norm_backward_data<double>(n, c, s, dy, gamma.data(), var.data(), eps, dx);
      },
      7);
}

TEST(BackwardFiniteDifference, Relu) {
  // Away from the kink: |x| >= 0.05, far beyond the step.
  Vec x = random_doubles(200, 8);
  for (double& v : x) v = v < 0 ? v - 0.05 : v + 0.05;
  const int64_t n = static_cast<int64_t>(x.size());
  Vec y(x.size());
  reference::relu_forward<double>(n, x.data(), y.data());
  check_gradient(
      "relu", x, n, [&](const double* in, double* out) { reference::relu_forward<double>(n, in, out); },
      [&](const double* dy, double* dx) { reference::relu_backward_data<double>(n, y.data(), dy, dx); }, 9);
  // At the kink (y == 0) the gradient is 0, PyTorch's choice.
  const Vec zero{0.0}, one{1.0};
  Vec dx{std::numeric_limits<double>::quiet_NaN()};
  reference::relu_backward_data<double>(1, zero.data(), one.data(), dx.data());
  EXPECT_EQ(dx[0], 0.0);
}

TEST(BackwardFiniteDifference, Add) {
  const int64_t n = 50;
  const Vec b = random_doubles(n, 10);
  check_gradient(
      "add", random_doubles(n, 11), n,
      [&](const double* x, double* y) { reference::add_forward<double>(n, x, b.data(), y); },
      [&](const double* dy, double* dx) { reference::add_backward_data<double>(n, dy, dx); }, 12);
}

TEST(BackwardFiniteDifference, ZeroPadShortcut) {
  // Odd sizes: 5x7 subsampled by 2 keeps rows/columns 0, 2, 4 (and 6).
  const ZeroPadShortcutOp op{2, 1, 2};
  const Shape in{2, 3, 5, 7};
  const Shape out = infer_shape(op, {in}, "shortcut");
  const auto forward = [&](const double* x, double* y) {
    reference::zero_pad_shortcut_forward<double>(op, in[0], in[1], in[2], in[3], x, y);
  };
  const auto backward = [&](const double* dy, double* dx) {
    reference::zero_pad_shortcut_backward_data<double>(op, in[0], in[1], in[2], in[3], dy, dx);
  };
  check_gradient("zero_pad_shortcut", random_doubles(in.numel(), 13), out.numel(), forward, backward, 14);
  // The skipped pixels get exactly zero, the kept ones dy.
  const Vec dy = random_doubles(out.numel(), 15);
  Vec dx(static_cast<size_t>(in.numel()), std::numeric_limits<double>::quiet_NaN());
  backward(dy.data(), dx.data());
  EXPECT_EQ(dx[1], 0.0);                               // (0,0,0,1): odd column
  EXPECT_EQ(dx[7], 0.0);                               // (0,0,1,0): odd row
  EXPECT_EQ(dx[0], dy[(0 * 6 + 1) * 3 * 4]);           // channel 0 sits at output channel 1
  EXPECT_EQ(dx[4 * 7 + 6], dy[(0 * 6 + 1) * 12 + 2 * 4 + 3]);  // (4,6) -> (2,3)
}

TEST(BackwardFiniteDifference, Clip) {
  // Away from the bounds: |x - min| and |x - max| >= 0.05, far beyond the step.
  const ClipOp op{-0.5f, 0.5f};
  Vec x = random_doubles(200, 60, -1.5, 1.5);
  for (double& v : x)
    for (double bound : {-0.5, 0.5})
      if (std::fabs(v - bound) < 0.05) v = bound + (v < bound ? -0.05 : 0.05);
  const int64_t n = static_cast<int64_t>(x.size());
  Vec y(x.size());
  reference::clip_forward<double>(op, n, x.data(), y.data());
  check_gradient(
      "clip", x, n, [&](const double* in, double* out) { reference::clip_forward<double>(op, n, in, out); },
      [&](const double* dy, double* dx) { reference::clip_backward_data<double>(op, n, y.data(), dy, dx); }, 61);
  // At either bound the gradient is 0 (PyTorch's hardtanh), inside it passes.
  const Vec at{-0.5, 0.5, 0.25}, ones{1, 1, 1};
  Vec dx(3, std::numeric_limits<double>::quiet_NaN());
  reference::clip_backward_data<double>(op, 3, at.data(), ones.data(), dx.data());
  EXPECT_EQ(dx, (Vec{0, 0, 1}));
}

TEST(BackwardFiniteDifference, Slice) {
  // Strided on every axis with offsets, so some of every axis's cells are skipped.
  const SliceOp op{{1, 0, 2}, {2, 2, 3}, {2, 3, 2}};
  const Shape in{2, 5, 6, 7};
  const Shape out = infer_shape(op, {in}, "slice");
  const auto forward = [&](const double* x, double* y) {
    reference::slice_forward<double>(op, in[0], in[1], in[2], in[3], x, y);
  };
  const auto backward = [&](const double* dy, double* dx) {
    reference::slice_backward_data<double>(op, in[0], in[1], in[2], in[3], dy, dx);
  };
  check_gradient("slice", random_doubles(in.numel(), 62), out.numel(), forward, backward, 63);
  // The skipped cells get exactly zero, the sliced ones dy.
  const Vec dy = random_doubles(out.numel(), 64);
  Vec dx(static_cast<size_t>(in.numel()), std::numeric_limits<double>::quiet_NaN());
  backward(dy.data(), dx.data());
  EXPECT_EQ(dx[0], 0.0);                                        // channel 0 is skipped
  EXPECT_EQ(dx[(1 * 6 + 0) * 7 + 2], dy[0]);                    // (1,0,2) is output (0,0,0)
  EXPECT_EQ(dx[(1 * 6 + 0) * 7 + 3], 0.0);                      // column 3 is skipped
  EXPECT_EQ(dx[(3 * 6 + 4) * 7 + 5], dy[(1 * 3 + 2) * 2 + 1]);  // (3,4,5) is output (1,2,1)
}

TEST(BackwardFiniteDifference, Pad) {
  const PadOp op{{1, 0, 2}, {2, 1, 0}, 0.75f};
  const Shape in{2, 3, 4, 5};
  const Shape out = infer_shape(op, {in}, "pad");
  const auto backward = [&](const double* dy, double* dx) {
    reference::pad_backward_data<double>(op, in[0], in[1], in[2], in[3], dy, dx);
  };
  check_gradient(
      "pad", random_doubles(in.numel(), 65), out.numel(),
      [&](const double* x, double* y) { reference::pad_forward<double>(op, in[0], in[1], in[2], in[3], x, y); },
      backward, 66);
  // Input (0,0,0,0) sits at output (0,1,0,2).
  const Vec dy = random_doubles(out.numel(), 67);
  Vec dx(static_cast<size_t>(in.numel()));
  backward(dy.data(), dx.data());
  EXPECT_EQ(dx[0], dy[(1 * 5 + 0) * 7 + 2]);
}

TEST(BackwardFiniteDifference, GlobalAvgPool) {
  const int64_t n = 2, c = 3, s = 20;
  check_gradient(
      "global_avg_pool", random_doubles(n * c * s, 16), n * c,
      [&](const double* x, double* y) { reference::global_avg_pool_forward<double>(n, c, s, x, y); },
      [&](const double* dy, double* dx) { reference::global_avg_pool_backward_data<double>(n, c, s, dy, dx); }, 17);
}

TEST(BackwardFiniteDifference, AvgPoolBothPaddingSemantics) {
  struct Case {
    std::string name;
    Shape in;
    AvgPoolOp op;
  };
  const std::vector<Case> cases{
      {"3x3/1 pad 1", {2, 2, 5, 6}, {3, 3, 1, 1, 1, 1, 1, 1, true}},
      {"3x3/2 pad 1", {2, 2, 7, 8}, {3, 3, 2, 2, 1, 1, 1, 1, true}},
      {"3x3/2 asymmetric pad t0 l1 b1 r0", {1, 2, 7, 6}, {3, 3, 2, 2, 0, 1, 1, 0, true}},
      {"2x2/2 valid, odd size (last row unread)", {2, 2, 5, 7}, {2, 2, 2, 2, 0, 0, 0, 0, true}},
      {"8x8 global-like", {2, 3, 8, 8}, {8, 8, 8, 8, 0, 0, 0, 0, true}},
  };
  uint32_t seed = 20;
  for (Case c : cases)
    for (bool include_pad : {true, false}) {
      c.op.count_include_pad = include_pad;
      const Shape out = infer_shape(c.op, {c.in}, "pool");
      const std::string what = "avg_pool " + c.name + (include_pad ? " count_include_pad" : " exclude_pad");
      const auto forward = [&](const double* x, double* y) {
        reference::avg_pool_forward<double>(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x, out[2], out[3], y);
      };
      const auto backward = [&](const double* dy, double* dx) {
        reference::avg_pool_backward_data<double>(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy, out[2], out[3], dx);
      };
      if (c.name.find("unread") != std::string::npos) {
        // The unread row gets an exact zero (which a finite difference also gives).
        const Vec dy(static_cast<size_t>(out.numel()), 1.0);
        Vec dx(static_cast<size_t>(c.in.numel()), std::numeric_limits<double>::quiet_NaN());
        backward(dy.data(), dx.data());
        EXPECT_EQ(dx[4 * 7 + 0], 0.0) << what;
        EXPECT_EQ(dx[0], 0.25) << what;
      }
      seed += 2;
      check_gradient(what, random_doubles(c.in.numel(), seed), out.numel(), forward, backward, seed + 1);
    }
  // By hand: a 3x3/1 pool with padding 1 on a 3x3 input, dy = 1 at the corner output only:
  // its window holds 4 input cells, each gets 1/9 (count_include_pad) or 1/4 (exclude).
  AvgPoolOp op{3, 3, 1, 1, 1, 1, 1, 1, true};
  Vec dy(9, 0.0), dx(9);
  dy[0] = 1;
  reference::avg_pool_backward_data<double>(op, 1, 1, 3, 3, dy.data(), 3, 3, dx.data());
  EXPECT_EQ(dx, (Vec{1.0 / 9, 1.0 / 9, 0, 1.0 / 9, 1.0 / 9, 0, 0, 0, 0}));
  op.count_include_pad = false;
  reference::avg_pool_backward_data<double>(op, 1, 1, 3, 3, dy.data(), 3, 3, dx.data());
  EXPECT_EQ(dx, (Vec{0.25, 0.25, 0, 0.25, 0.25, 0, 0, 0, 0}));
}

TEST(BackwardFiniteDifference, Dense) {
  const int64_t batch = 3, in = 7, out = 5;
  const Vec w = random_doubles(out * in, 30), b = random_doubles(out, 31);
  check_gradient(
      "dense", random_doubles(batch * in, 32), batch * out,
      [&](const double* x, double* y) { reference::dense_forward<double>(batch, in, out, x, w.data(), b.data(), y); },
      [&](const double* dy, double* dx) { reference::dense_backward_data<double>(batch, in, out, dy, w.data(), dx); },
      33);
}

TEST(BackwardFiniteDifference, Softmax) {
  const int64_t rows = 3, cols = 6;
  const Vec x = random_doubles(rows * cols, 34, -3, 3);
  Vec y(x.size());
  reference::softmax_forward<double>(rows, cols, x.data(), y.data());
  check_gradient(
      "softmax", x, rows * cols,
      [&](const double* in, double* out) { reference::softmax_forward<double>(rows, cols, in, out); },
      [&](const double* dy, double* dx) { reference::softmax_backward_data<double>(rows, cols, y.data(), dy, dx); },
      35);
}

// Distinct values at least 1e-3 apart (a shuffled ramp): no window has a tie within the step.
Vec distinct_values(int64_t n, uint32_t seed) {
  Vec v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  for (double& x : v) x = -1 + x * 1e-3;
  return v;
}

TEST(BackwardFiniteDifference, MaxPoolWithPadding) {
  struct Case {
    std::string name;
    Shape in;
    MaxPoolOp op;
  };
  const std::vector<Case> cases{
      {"3x3/2 pad 1", {2, 2, 7, 8}, {3, 3, 2, 2, 1, 1, 1, 1}},
      {"3x3/1 pad 1 (overlapping windows)", {1, 2, 5, 6}, {3, 3, 1, 1, 1, 1, 1, 1}},
      {"3x3/2 valid (InceptionV3)", {2, 2, 9, 9}, {3, 3, 2, 2, 0, 0, 0, 0}},
      {"2x2/2 asymmetric pad b1 r1", {1, 3, 5, 5}, {2, 2, 2, 2, 0, 0, 1, 1}},
  };
  uint32_t seed = 40;
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pool");
    // Negative values: a padded cell counted as 0 would win and break the gradient.
    seed += 2;
    const Vec x = distinct_values(c.in.numel(), seed);
    check_gradient(
        "max_pool " + c.name, x, out.numel(),
        [&](const double* in, double* y) {
          reference::max_pool_forward<double>(c.op, c.in[0], c.in[1], c.in[2], c.in[3], in, out[2], out[3], y);
        },
        [&](const double* dy, double* dx) {
          reference::max_pool_backward_data<double>(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), dy, out[2],
                                                    out[3], dx);
        },
        seed + 1);
  }
}

// Ties: the whole gradient of a window goes to its first maximum in row-major order, and a
// cell that is the maximum of several windows collects all their gradients.
TEST(BackwardFiniteDifference, MaxPoolTiesGoToTheFirstMaximum) {
  const MaxPoolOp op{2, 2, 1, 1, 0, 0, 0, 0};  // 2x2/1 on 3x3 -> 2x2
  const Vec x{1, 5, 5,   // the two 5s tie in windows (0,0) and (0,1)
              5, 2, 0,   //
              0, 3, 3};  // the 3s tie in window (1,1); the 5 at (1,0) is the max of (1,0)
  const Vec dy{1, 10, 100, 1000};
  Vec dx(9, std::numeric_limits<double>::quiet_NaN());
  reference::max_pool_backward_data<double>(op, 1, 1, 3, 3, x.data(), dy.data(), 2, 2, dx.data());
  // (0,0): window {1,5,5,2}: first max at (0,1). (0,1): {5,5,2,0}: first max at (0,1).
  // (1,0): {5,2,0,3}: (1,0). (1,1): {2,0,3,3}: first max at (2,1).
  EXPECT_EQ(dx, (Vec{0, 11, 0, 100, 0, 0, 0, 1000, 0}));
}

TEST(BackwardFiniteDifference, ConcatPartInTheMiddle) {
  // Input b of concat(a, b, c) along channels: 2 + 3 + 4 channels, b at offset 2.
  const int64_t n = 2, part = 3, s = 10, offset = 2, total = 9;
  const Vec others = random_doubles(n * total * s, 50);
  check_gradient(
      "concat", random_doubles(n * part * s, 51), n * total * s,
      [&](const double* x, double* y) {
        std::copy(others.begin(), others.end(), y);  // a and c: constants
        reference::concat_forward<double>(n, part, s, offset, total, x, y);
      },
      [&](const double* dy, double* dx) { reference::concat_backward_data<double>(n, part, s, offset, total, dy, dx); },
      52);
}

TEST(BackwardFiniteDifference, ChannelAffine) {
  const int64_t n = 2, c = 3, s = 15;
  const Vec scale{0.458, -0.448, 2.0}, shift{-0.03, -0.088, -0.188};
  check_gradient(
      "channel_affine", random_doubles(n * c * s, 53), n * c * s,
      [&](const double* x, double* y) {
        reference::channel_affine_forward<double>(n, c, s, x, scale.data(), shift.data(), y);
      },
      [&](const double* dy, double* dx) { reference::channel_affine_backward_data<double>(n, c, s, dy, scale.data(), dx); },
      54);
}

TEST(AttributionReference, InterpolateByHand) {
  const Vec baseline{0, 1, -2, 4}, x{1, 3, 2, 4};
  Vec y(4);
  reference::interpolate<double>(4, baseline.data(), x.data(), 0.25, y.data());
  EXPECT_EQ(y, (Vec{0.25, 1.5, -1, 4}));
  reference::interpolate<double>(4, baseline.data(), x.data(), 0.0, y.data());
  EXPECT_EQ(y, baseline);
  reference::interpolate<double>(4, baseline.data(), x.data(), 1.0, y.data());
  EXPECT_EQ(y, x);
}

TEST(AttributionReference, ConductanceAccumulateByHand) {
  // 2 channels x 3 pixels. v = grad * (upper - lower):
  //   channel 0: 1*(2-1)=1, 2*(0-1)=-2, 0.5*(4-0)=2  -> 1
  //   channel 1: -1*(1-3)=2, 3*(1-1)=0, 2*(0.5-0)=1  -> 3
  const Vec grad{1, 2, 0.5, -1, 3, 2}, upper{2, 0, 4, 1, 1, 0.5}, lower{1, 1, 0, 3, 1, 0};
  Vec sums{10, 20}, map{1, 1, 1, 1, 1, 1};
  reference::conductance_accumulate<double>(2, 3, grad.data(), upper.data(), lower.data(), sums.data(), map.data());
  EXPECT_EQ(sums, (Vec{11, 23}));
  EXPECT_EQ(map, (Vec{2, -1, 3, 3, 1, 2}));
  // Without a map only the sums move; a second interval adds again.
  reference::conductance_accumulate<double>(2, 3, grad.data(), upper.data(), lower.data(), sums.data(), nullptr);
  EXPECT_EQ(sums, (Vec{12, 26}));
  // float: the channel sum is formed in double, so terms far below the float ulp of a
  // partial sum are not lost: 1 + 2^-25 * 4 (each term alone would vanish in float).
  const std::vector<float> g{1, 1, 1, 1, 1}, u{1, 0x1p-25f, 0x1p-25f, 0x1p-25f, 0x1p-25f}, l(5, 0.0f);
  std::vector<float> fsums{0};
  reference::conductance_accumulate<float>(1, 5, g.data(), u.data(), l.data(), fsums.data(), nullptr);
  EXPECT_EQ(fsums[0], 1.0f + 0x1p-23f);
}

}  // namespace
}  // namespace veto
