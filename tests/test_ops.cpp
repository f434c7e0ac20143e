// Every fast CPU op (kernels/cpu) against its reference (kernels/reference) on shapes from
// the real models, batch > 1. conv2d has its own file (test_conv2d.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/reference/add.h"
#include "kernels/reference/avg_pool.h"
#include "kernels/reference/batch_norm.h"
#include "kernels/reference/channel_affine.h"
#include "kernels/reference/clip.h"
#include "kernels/reference/concat.h"
#include "kernels/reference/dense.h"
#include "kernels/reference/global_avg_pool.h"
#include "kernels/reference/max_pool.h"
#include "kernels/reference/pad.h"
#include "kernels/reference/relu.h"
#include "kernels/reference/slice.h"
#include "kernels/reference/softmax.h"
#include "kernels/reference/zero_pad_shortcut.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

std::vector<float> random(int64_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  fill_uniform(v, seed, lo, hi);
  return v;
}

TEST(BatchNormForward, CpuMatchesReference) {
  for (const Shape& s : {Shape{3, 16, 32, 32}, Shape{3, 64, 8, 8}, Shape{2, 35, 17, 17}}) {
    const int64_t c = s[1], sp = s[2] * s[3];
    auto x = random(s.numel(), 1), g = random(c, 2, 0.5f, 1.5f), b = random(c, 3);
    auto m = random(c, 4), v = random(c, 5, 0.1f, 2.0f);
    std::vector<float> want(x.size()), got(x.size());
    reference::batch_norm_forward(s[0], c, sp, x.data(), g.data(), b.data(), m.data(), v.data(), 1e-3f, want.data());
    cpu::batch_norm_forward(s[0], c, sp, x.data(), g.data(), b.data(), m.data(), v.data(), 1e-3f, got.data());
    expect_close(got.data(), want.data(), s.numel(), 1e-5f, 1e-6f, "batch_norm " + s.str());
  }
}

TEST(ReluForward, CpuMatchesReference) {
  const int64_t n = 3 * 16 * 32 * 32 + 5;
  auto x = random(n, 7);
  std::vector<float> want(x.size()), got(x.size());
  reference::relu_forward(n, x.data(), want.data());
  cpu::relu_forward(n, x.data(), got.data());
  expect_close(got.data(), want.data(), n, 0, 0, "relu");
}

TEST(AddForward, CpuMatchesReferenceWithAndWithoutRelu) {
  const int64_t n = 3 * 32 * 16 * 16 + 3;
  auto a = random(n, 8), b = random(n, 9);
  std::vector<float> want(a.size()), got(a.size());
  reference::add_forward(n, a.data(), b.data(), want.data());
  cpu::add_forward(n, a.data(), b.data(), got.data(), false);
  expect_close(got.data(), want.data(), n, 0, 0, "add");
  reference::relu_forward(n, want.data(), want.data());
  cpu::add_forward(n, a.data(), b.data(), got.data(), true);
  expect_close(got.data(), want.data(), n, 0, 0, "add+relu");
}

TEST(ZeroPadShortcutForward, CpuMatchesReferenceOnResnetStages) {
  for (const Shape& s : {Shape{3, 16, 32, 32}, Shape{3, 32, 16, 16}, Shape{2, 5, 7, 9}}) {
    const ZeroPadShortcutOp op{2, s[1] / 2, s[1] / 2};
    const Shape out = infer_shape(op, {s}, "shortcut");
    auto x = random(s.numel(), 10);
    std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size(), 7.0f);
    reference::zero_pad_shortcut_forward(op, s[0], s[1], s[2], s[3], x.data(), want.data());
    cpu::zero_pad_shortcut_forward(op, s[0], s[1], s[2], s[3], x.data(), got.data());
    expect_close(got.data(), want.data(), out.numel(), 0, 0, "zero_pad_shortcut " + s.str());
  }
  // Hand-checked: the subsampled pixel (0,0) of channel 0 lands in channel pad_before.
  const ZeroPadShortcutOp op{2, 1, 1};
  std::vector<float> x{1, 2, 3, 4}, y(3 * 1 * 1);
  reference::zero_pad_shortcut_forward(op, 1, 1, 2, 2, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0, 1, 0}));
}

TEST(GlobalAvgPoolForward, CpuMatchesReference) {
  const Shape s{3, 64, 8, 8};
  auto x = random(s.numel(), 11);
  std::vector<float> want(3 * 64), got(3 * 64);
  reference::global_avg_pool_forward(s[0], s[1], s[2] * s[3], x.data(), want.data());
  cpu::global_avg_pool_forward(s[0], s[1], s[2] * s[3], x.data(), got.data());
  expect_close(got.data(), want.data(), 3 * 64, 1e-5f, 1e-6f, "global_avg_pool");
}

TEST(AvgPoolForward, CpuMatchesReferenceBothPaddingSemantics) {
  struct Case {
    Shape in;
    AvgPoolOp op;
  };
  const std::vector<Case> cases{
      {{3, 64, 8, 8}, {8, 8, 8, 8, 0, 0, 0, 0, true}},           // Keras ResNet20v1 head
      {{2, 192, 35, 35}, {3, 3, 1, 1, 1, 1, 1, 1, true}},        // torchvision Inception branch pool
      {{2, 192, 35, 35}, {3, 3, 1, 1, 1, 1, 1, 1, false}},       // Keras Inception branch pool
      {{2, 7, 17, 13}, {3, 3, 2, 2, 0, 0, 0, 0, true}},          // odd sizes, stride 2, valid
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pool");
    auto x = random(c.in.numel(), 12);
    std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size());
    reference::avg_pool_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), out[2], out[3], want.data());
    cpu::avg_pool_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), out[2], out[3], got.data());
    expect_close(got.data(), want.data(), out.numel(), 1e-5f, 1e-6f, "avg_pool " + c.in.str());
  }
  // Hand-checked corner of a 3x3/1 pool with padding 1 on an all-ones input: 4 cells inside.
  std::vector<float> ones(4 * 4, 1.0f), y(16);
  AvgPoolOp op{3, 3, 1, 1, 1, 1, 1, 1, true};
  reference::avg_pool_forward(op, 1, 1, 4, 4, ones.data(), 4, 4, y.data());
  EXPECT_FLOAT_EQ(y[0], 4.0f / 9.0f);
  op.count_include_pad = false;
  reference::avg_pool_forward(op, 1, 1, 4, 4, ones.data(), 4, 4, y.data());
  EXPECT_FLOAT_EQ(y[0], 1.0f);
}

TEST(DenseForward, CpuMatchesReference) {
  for (auto [batch, in, out] : {std::tuple<int64_t, int64_t, int64_t>{3, 64, 10}, {2, 2048, 1000}, {5, 7, 3}}) {
    auto x = random(batch * in, 13), w = random(out * in, 14), b = random(out, 15);
    std::vector<float> want(static_cast<size_t>(batch * out)), got(want.size());
    reference::dense_forward(batch, in, out, x.data(), w.data(), b.data(), want.data());
    cpu::dense_forward(batch, in, out, x.data(), w.data(), b.data(), got.data());
    // Long dot products summed in another order: allow float rounding that grows with length.
    const float atol = 1e-6f * static_cast<float>(in);
    expect_close(got.data(), want.data(), batch * out, 1e-4f, atol, "dense");
    cpu::dense_forward(batch, in, out, x.data(), w.data(), nullptr, got.data());
    for (int64_t i = 0; i < batch * out; ++i) want[i] -= b[i % out];
    expect_close(got.data(), want.data(), batch * out, 1e-4f, atol, "dense without bias");
  }
}

TEST(SoftmaxForward, CpuMatchesReferenceAndSurvivesLargeLogits) {
  auto x = random(5 * 10, 16, -20, 20);
  x[3] = 1000.0f;  // would overflow exp() without the max shift
  std::vector<float> want(x.size()), got(x.size());
  reference::softmax_forward(5, 10, x.data(), want.data());
  cpu::softmax_forward(5, 10, x.data(), got.data());
  expect_close(got.data(), want.data(), 50, 1e-5f, 1e-7f, "softmax");
  EXPECT_NEAR(got[3], 1.0f, 1e-6f);
  for (int r = 0; r < 5; ++r) {
    double sum = 0;
    for (int c = 0; c < 10; ++c) sum += got[r * 10 + c];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(MaxPoolForward, CpuMatchesReferenceOnInceptionShapes) {
  struct Case {
    Shape in;
    MaxPoolOp op;
  };
  const std::vector<Case> cases{
      {{2, 64, 147, 147}, {3, 3, 2, 2, 0, 0, 0, 0}},  // InceptionV3 maxpool1
      {{2, 288, 35, 35}, {3, 3, 2, 2, 0, 0, 0, 0}},   // mixed3 branch pool
      {{3, 5, 8, 9}, {3, 3, 1, 1, 1, 1, 1, 1}},       // padded, odd sizes
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pool");
    auto x = random(c.in.numel(), 17, -3, -1);  // all negative: padding must never win
    std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size());
    reference::max_pool_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), out[2], out[3], want.data());
    cpu::max_pool_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), out[2], out[3], got.data());
    expect_close(got.data(), want.data(), out.numel(), 0, 0, "max_pool " + c.in.str());
    for (float v : got) ASSERT_LT(v, -0.999f);
  }
  EXPECT_EQ(infer_shape(MaxPoolOp{3, 3, 2, 2, 0, 0, 0, 0}, {Shape{1, 64, 147, 147}}, "p"), (Shape{1, 64, 73, 73}));
}

TEST(ConcatForward, CpuMatchesReferenceAndStacksChannelsInOrder) {
  const Shape a{2, 64, 35, 35}, b{2, 96, 35, 35}, c{2, 32, 35, 35};  // mixed0's branches
  const Shape out = infer_shape(ConcatOp{}, {a, b, c}, "mixed0");
  EXPECT_EQ(out, (Shape{2, 192, 35, 35}));
  auto xa = random(a.numel(), 18), xb = random(b.numel(), 19), xc = random(c.numel(), 20);
  std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size());
  int64_t offset = 0;
  for (auto [s, x] : {std::pair{a, &xa}, std::pair{b, &xb}, std::pair{c, &xc}}) {
    reference::concat_forward(s[0], s[1], s[2] * s[3], offset, out[1], x->data(), want.data());
    cpu::concat_forward(s[0], s[1], s[2] * s[3], offset, out[1], x->data(), got.data());
    offset += s[1];
  }
  expect_close(got.data(), want.data(), out.numel(), 0, 0, "concat");
  // Sample 1, channel 64 is the first channel of b.
  EXPECT_EQ(got[(1 * 192 + 64) * 35 * 35], xb[(1 * 96 + 0) * 35 * 35]);
  EXPECT_THROW(infer_shape(ConcatOp{}, {a, Shape{2, 5, 17, 17}}, "bad"), Error);
}

TEST(ChannelAffineForward, CpuMatchesReference) {
  const Shape s{3, 3, 299, 299};
  const std::vector<float> scale{0.458f, 0.448f, 0.45f}, shift{-0.03f, -0.088f, -0.188f};
  auto x = random(s.numel(), 21);
  std::vector<float> want(x.size()), got(x.size());
  reference::channel_affine_forward(s[0], s[1], s[2] * s[3], x.data(), scale.data(), shift.data(), want.data());
  cpu::channel_affine_forward(s[0], s[1], s[2] * s[3], x.data(), scale.data(), shift.data(), got.data());
  expect_close(got.data(), want.data(), s.numel(), 1e-6f, 1e-7f, "channel_affine");
}

TEST(ClipForward, CpuMatchesReference) {
  const int64_t n = 3 * 32 * 112 * 112 + 5;  // MobileNetV2's first ReLU6
  auto x = random(n, 22, -8, 8);
  for (const ClipOp& op : {ClipOp{0, 6}, ClipOp{-1.5f, 0.25f}, ClipOp{2, 2}}) {
    std::vector<float> want(x.size()), got(x.size());
    reference::clip_forward(op, n, x.data(), want.data());
    cpu::clip_forward(op, n, x.data(), got.data());
    expect_close(got.data(), want.data(), n, 0, 0, "clip");
  }
  // Hand-checked ReLU6; NaN stays NaN.
  const std::vector<float> in{-1, 0, 3, 6, 7, NAN};
  std::vector<float> y(in.size());
  cpu::clip_forward(ClipOp{0, 6}, 6, in.data(), y.data());
  EXPECT_EQ(std::vector<float>(y.begin(), y.begin() + 5), (std::vector<float>{0, 0, 3, 6, 6}));
  EXPECT_TRUE(std::isnan(y[5]));
}

TEST(SliceForward, CpuMatchesReference) {
  struct Case {
    Shape in;
    SliceOp op;
  };
  const std::vector<Case> cases{
      {{2, 16, 32, 32}, {{0, 0, 0}, {1, 2, 2}, {16, 16, 16}}},  // x[:, :, ::2, ::2] (space-to-depth)
      {{2, 16, 32, 32}, {{0, 1, 1}, {1, 2, 2}, {16, 16, 16}}},  // its odd phase
      {{3, 24, 17, 17}, {{8, 0, 0}, {1, 1, 1}, {12, 17, 17}}},  // a channel split
      {{2, 7, 13, 11}, {{1, 2, 3}, {2, 3, 1}, {3, 4, 5}}},      // a crop with unit step along W
      {{2, 7, 13, 11}, {{6, 12, 10}, {1, 1, 1}, {1, 1, 1}}},    // the last cell
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "slice");
    auto x = random(c.in.numel(), 23);
    std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size(), 7.0f);
    reference::slice_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), want.data());
    cpu::slice_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), got.data());
    expect_close(got.data(), want.data(), out.numel(), 0, 0, "slice " + c.in.str());
  }
  // Hand-checked: rows 1 and 2, columns 0 and 2 of a 3x4 ramp.
  const SliceOp op{{0, 1, 0}, {1, 1, 2}, {1, 2, 2}};
  std::vector<float> x(12), y(4);
  for (int i = 0; i < 12; ++i) x[i] = static_cast<float>(i);
  EXPECT_EQ(infer_shape(op, {Shape{1, 1, 3, 4}}, "slice"), (Shape{1, 1, 2, 2}));
  reference::slice_forward(op, 1, 1, 3, 4, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{4, 6, 8, 10}));
}

TEST(PadForward, CpuMatchesReference) {
  struct Case {
    Shape in;
    PadOp op;
  };
  const std::vector<Case> cases{
      {{2, 3, 224, 224}, {{0, 0, 0}, {0, 1, 1}, 0.0f}},   // TensorFlow "same", stride 2: pads only after
      {{2, 32, 17, 17}, {{0, 1, 1}, {0, 1, 1}, 0.0f}},    // symmetric spatial
      {{2, 5, 7, 9}, {{2, 0, 3}, {1, 2, 0}, -0.5f}},      // channels too, a non-zero value
      {{1, 3, 1, 1}, {{0, 0, 0}, {0, 0, 0}, 1.0f}},       // no padding: a copy
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pad");
    auto x = random(c.in.numel(), 24);
    std::vector<float> want(static_cast<size_t>(out.numel())), got(want.size(), 7.0f);
    reference::pad_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), want.data());
    cpu::pad_forward(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), got.data());
    expect_close(got.data(), want.data(), out.numel(), 0, 0, "pad " + c.in.str());
  }
  // Hand-checked: (1,1,1,2) padded by one row above, one column left and one channel after.
  const PadOp op{{0, 1, 1}, {1, 0, 0}, 9.0f};
  const std::vector<float> x{1, 2};
  std::vector<float> y(12);
  EXPECT_EQ(infer_shape(op, {Shape{1, 1, 1, 2}}, "pad"), (Shape{1, 2, 2, 3}));
  reference::pad_forward(op, 1, 1, 1, 2, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{9, 9, 9, 9, 1, 2, 9, 9, 9, 9, 9, 9}));
}

TEST(InferShape, RejectsInputsThatDoNotFit) {
  Conv2dOp conv;
  conv.in_channels = 3;
  conv.out_channels = 16;
  conv.kernel_h = conv.kernel_w = 3;
  EXPECT_EQ(infer_shape(conv, {Shape{2, 3, 32, 32}}, "c"), (Shape{2, 16, 30, 30}));
  try {
    infer_shape(conv, {Shape{2, 4, 32, 32}}, "layer1.0.conv1");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "node 'layer1.0.conv1' (conv2d): expects 3 input channels, got input (2,4,32,32)");
  }
  EXPECT_THROW(infer_shape(AddOp{}, {Shape{1, 2}, Shape{1, 3}}, "add"), Error);
  EXPECT_THROW(infer_shape(conv, {Shape{2, 3, 2, 2}}, "small"), Error);
}

// Groups must divide both channel counts and dilations be positive; the dilated window spans
// (k - 1) * d + 1 cells. The weight shape and the MAC count take one group's channels.
TEST(InferShape, Conv2dGroupsAndDilation) {
  Conv2dOp conv;
  conv.in_channels = 8;
  conv.out_channels = 12;
  conv.kernel_h = conv.kernel_w = 3;
  const Shape in{2, 8, 32, 30};
  auto with = [&](int64_t groups, int64_t dilation_h, int64_t dilation_w) {
    Conv2dOp op = conv;
    op.groups = groups;
    op.dilation_h = dilation_h;
    op.dilation_w = dilation_w;
    return op;
  };
  EXPECT_EQ(infer_shape(with(4, 1, 1), {in}, "c"), (Shape{2, 12, 30, 28}));
  EXPECT_EQ(infer_shape(with(1, 2, 2), {in}, "c"), (Shape{2, 12, 28, 26}));  // window 5
  EXPECT_EQ(infer_shape(with(2, 3, 2), {in}, "c"), (Shape{2, 12, 26, 26}));  // windows 7 and 5
  Conv2dOp strided = with(1, 2, 3);  // windows 5 and 7, stride 2, pads t1 l0 b2 r1
  strided.stride_h = strided.stride_w = 2;
  strided.pad_top = 1, strided.pad_bottom = 2, strided.pad_right = 1;
  EXPECT_EQ(infer_shape(strided, {in}, "c"), (Shape{2, 12, 16, 13}));
  EXPECT_EQ(infer_shape(with(1, 4, 4), {Shape{1, 8, 9, 9}}, "c"), (Shape{1, 12, 1, 1}));  // window 9 on 9
  EXPECT_THROW(infer_shape(with(1, 5, 5), {Shape{1, 8, 9, 9}}, "c"), Error);               // window 11 on 9

  try {
    infer_shape(with(3, 1, 1), {in}, "blocks.1.dw");  // divides 12 but not 8
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "node 'blocks.1.dw' (conv2d): 3 groups do not divide 8 input and 12 output channels");
  }
  EXPECT_THROW(infer_shape(with(8, 1, 1), {in}, "c"), Error);  // divides 8 but not 12
  EXPECT_THROW(infer_shape(with(0, 1, 1), {in}, "c"), Error);
  EXPECT_THROW(infer_shape(with(-2, 1, 1), {in}, "c"), Error);
  EXPECT_THROW(infer_shape(with(1, 0, 1), {in}, "c"), Error);
  EXPECT_THROW(infer_shape(with(1, 1, 0), {in}, "c"), Error);
  EXPECT_THROW(infer_shape(with(1, -1, 1), {in}, "c"), Error);

  const std::vector<ParamSpec> specs = param_specs(with(4, 2, 2), "dw");
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].shape, (Shape{12, 2, 3, 3}));
  EXPECT_EQ(op_macs(with(4, 2, 2), Shape{2, 12, 28, 26}), 12 * 28 * 26 * 2 * 9);
}

TEST(InferShape, RejectsBadClipSliceAndPadParams) {
  EXPECT_EQ(infer_shape(ClipOp{1, 1}, {Shape{2, 5}}, "clip"), (Shape{2, 5}));
  EXPECT_THROW(infer_shape(ClipOp{6, 0}, {Shape{2, 5}}, "clip"), Error);  // min > max

  const Shape in{2, 3, 5, 6};
  const SliceOp fits{{0, 1, 1}, {1, 2, 2}, {3, 2, 3}};  // rows 1, 3; columns 1, 3, 5
  EXPECT_EQ(infer_shape(fits, {in}, "slice"), (Shape{2, 3, 2, 3}));
  auto slice_with = [&](int axis, int64_t start, int64_t step, int64_t size) {
    SliceOp op = fits;
    op.start[axis] = start;
    op.step[axis] = step;
    op.size[axis] = size;
    return op;
  };
  EXPECT_THROW(infer_shape(slice_with(1, 0, 0, 1), {in}, "slice"), Error);   // step 0
  EXPECT_THROW(infer_shape(slice_with(1, 0, -1, 1), {in}, "slice"), Error);  // negative step
  EXPECT_THROW(infer_shape(slice_with(0, 3, 1, 1), {in}, "slice"), Error);   // start past the end
  EXPECT_THROW(infer_shape(slice_with(2, -1, 1, 1), {in}, "slice"), Error);  // negative start
  EXPECT_THROW(infer_shape(slice_with(2, 0, 1, 7), {in}, "slice"), Error);   // size too large
  EXPECT_THROW(infer_shape(slice_with(2, 2, 2, 3), {in}, "slice"), Error);   // 2, 4, 6: one past the end
  EXPECT_THROW(infer_shape(slice_with(1, 0, 1, 0), {in}, "slice"), Error);   // empty
  EXPECT_THROW(infer_shape(fits, {Shape{2, 3, 5}}, "slice"), Error);         // not NCHW

  const PadOp pads{{1, 0, 2}, {0, 3, 1}, 0.0f};
  EXPECT_EQ(infer_shape(pads, {in}, "pad"), (Shape{2, 4, 8, 9}));
  PadOp negative = pads;
  negative.before[1] = -1;
  EXPECT_THROW(infer_shape(negative, {in}, "pad"), Error);
  negative = pads;
  negative.after[2] = -1;
  EXPECT_THROW(infer_shape(negative, {in}, "pad"), Error);
  PadOp huge = pads;
  huge.after[0] = int64_t{1} << 40;  // past the cap that keeps element counts from overflowing
  EXPECT_THROW(infer_shape(huge, {in}, "pad"), Error);
  EXPECT_THROW(infer_shape(pads, {Shape{2, 3}}, "pad"), Error);
}

}  // namespace
}  // namespace veto
