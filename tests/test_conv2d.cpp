// The fast CPU convolution (kernels/cpu/conv2d, oneDNN) against the reference loops
// (kernels/reference/conv2d.h, run in double) on shapes from the real models, batch > 1:
// ResNet-20 CIFAR, a 1x1 stride-2 projection, TensorFlow "same" asymmetric padding and
// InceptionV3-like 1x7 / 7x1 / stride-2 valid / 5x5 layers with channels that are not
// multiples of the 8-wide blocks oneDNN uses, grouped, depthwise and dilated convolutions
// (MobileNet / DeepLab kinds). Every fusion, with and without bias.
// backward_data the same way against the reference transposed convolution, overwriting
// (dx pre-filled with NaN) and accumulating (dx pre-filled with known values). The reference
// itself is pinned for groups and dilation by hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/reference/conv2d.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

constexpr float kTol = 1e-4f;  // |fast - ref| <= 1e-4 * max(1, |ref|)
constexpr int64_t kGuard = 16;  // sentinel floats after the output: the kernel must not write there

struct ConvCase {
  std::string name;
  Conv2dOp op;
  Shape input;      // (N,C,H,W)
  Shape expected;   // output shape, written out by hand
};

Conv2dOp conv(int64_t in, int64_t out, int64_t kh, int64_t kw, int64_t stride, int64_t pt, int64_t pl, int64_t pb,
              int64_t pr) {
  Conv2dOp op;
  op.in_channels = in;
  op.out_channels = out;
  op.kernel_h = kh;
  op.kernel_w = kw;
  op.stride_h = op.stride_w = stride;
  op.pad_top = pt;
  op.pad_left = pl;
  op.pad_bottom = pb;
  op.pad_right = pr;
  return op;
}

// The same convolution with groups and dilation.
Conv2dOp grouped(Conv2dOp op, int64_t groups, int64_t dilation_h = 1, int64_t dilation_w = 1) {
  op.groups = groups;
  op.dilation_h = dilation_h;
  op.dilation_w = dilation_w;
  return op;
}

int64_t weight_count(const Conv2dOp& op) {
  return op.out_channels * (op.in_channels / op.groups) * op.kernel_h * op.kernel_w;
}

std::vector<float> random(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  fill_uniform(v, seed);
  return v;
}

std::string fusion_name(const ConvFusion& f, bool bias) {
  std::string s = bias ? "bias" : "no-bias";
  if (f.relu) s += "+relu";
  if (f.residual) s += "+residual";
  return s;
}

// conv(x, w) + bias, in double through the reference loops.
std::vector<double> reference_conv(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                                   const float* bias) {
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
  std::vector<double> bd;
  if (bias) bd.assign(bias, bias + c.op.out_channels);
  std::vector<double> y(static_cast<size_t>(c.expected.numel()));
  reference::conv2d_forward<double>(c.op, c.input[0], c.input[2], c.input[3], xd.data(), wd.data(),
                                    bias ? bd.data() : nullptr, c.expected[2], c.expected[3], y.data());
  return y;
}

// The epilogue applied to the reference: relu?(conv + bias + residual?).
std::vector<float> reference_epilogue(const std::vector<double>& conv_bias, const ConvFusion& f,
                                      const std::vector<float>& residual) {
  std::vector<float> out(conv_bias.size());
  for (size_t i = 0; i < out.size(); ++i) {
    double v = conv_bias[i] + (f.residual ? residual[i] : 0.0);
    if (f.relu && v < 0) v = 0;
    out[i] = static_cast<float>(v);
  }
  return out;
}

// Runs the fast kernel once, checking shape, guard sentinels and NaN; returns the output.
std::vector<float> run_fast(const ConvCase& c, const ConvFusion& f, const std::vector<float>& x,
                            const std::vector<float>& w, const float* bias, const float* residual,
                            const std::string& what) {
  EXPECT_EQ(infer_shape(OpParams(c.op), {c.input}, "conv"), c.expected) << what;
  const int64_t n = c.expected.numel();
  std::vector<float> y(static_cast<size_t>(n + kGuard), std::numeric_limits<float>::quiet_NaN());
  auto kernel = cpu::make_conv2d(c.op, c.input, f);
  kernel->set_weights(w.data(), bias);
  kernel->forward(x.data(), y.data(), residual);
  for (int64_t i = n; i < n + kGuard; ++i) EXPECT_TRUE(std::isnan(y[i])) << what << ": wrote past the output";
  y.resize(static_cast<size_t>(n));
  int64_t nans = 0;
  for (float v : y) nans += std::isnan(v);
  EXPECT_EQ(nans, 0) << what << ": NaN (or unwritten) outputs with " << cpu::conv2d_implementation(*kernel);
  return y;
}

// Shapes from the real models, shared by the forward and backward_data tests.
std::vector<ConvCase> resnet20_cases() {
  return {
      {"conv1 3->16", conv(3, 16, 3, 3, 1, 1, 1, 1, 1), {3, 3, 32, 32}, {3, 16, 32, 32}},
      {"layer1 16->16", conv(16, 16, 3, 3, 1, 1, 1, 1, 1), {3, 16, 32, 32}, {3, 16, 32, 32}},
      {"layer2.0 16->32 s2", conv(16, 32, 3, 3, 2, 1, 1, 1, 1), {3, 16, 32, 32}, {3, 32, 16, 16}},
      {"layer2 32->32", conv(32, 32, 3, 3, 1, 1, 1, 1, 1), {3, 32, 16, 16}, {3, 32, 16, 16}},
      {"layer3.0 32->64 s2", conv(32, 64, 3, 3, 2, 1, 1, 1, 1), {3, 32, 16, 16}, {3, 64, 8, 8}},
      {"layer3 64->64", conv(64, 64, 3, 3, 1, 1, 1, 1, 1), {3, 64, 8, 8}, {3, 64, 8, 8}},
      {"layer3 64->64 batch 1", conv(64, 64, 3, 3, 1, 1, 1, 1, 1), {1, 64, 8, 8}, {1, 64, 8, 8}},
  };}

std::vector<ConvCase> asymmetric_cases() {
  return {
      {"1x1 s2 projection 16->32", conv(16, 32, 1, 1, 2, 0, 0, 0, 0), {3, 16, 32, 32}, {3, 32, 16, 16}},
      {"tf-same 3x3 s2 16->32", conv(16, 32, 3, 3, 2, 0, 0, 1, 1), {3, 16, 32, 32}, {3, 32, 16, 16}},
      {"tf-same 3x3 s2 3->16", conv(3, 16, 3, 3, 2, 0, 0, 1, 1), {2, 3, 32, 32}, {2, 16, 16, 16}},
      {"asymmetric 3x3 t1 l0 b0 r2", conv(8, 12, 3, 3, 1, 1, 0, 0, 2), {2, 8, 9, 10}, {2, 12, 8, 10}},
      // Stride 2 where the last input row and column are read by no output (they get 0).
      {"3x3 s2 valid on 10x10", conv(8, 8, 3, 3, 2, 0, 0, 0, 0), {2, 8, 10, 10}, {2, 8, 4, 4}},
  };}

std::vector<ConvCase> inception_cases() {
  return {
      {"1x7 pad (0,3) 35->48", conv(35, 48, 1, 7, 1, 0, 3, 0, 3), {2, 35, 17, 17}, {2, 48, 17, 17}},
      {"7x1 pad (3,0) 48->35", conv(48, 35, 7, 1, 1, 3, 0, 3, 0), {2, 48, 17, 17}, {2, 35, 17, 17}},
      {"3x3 s2 valid 35->48 on 35x35", conv(35, 48, 3, 3, 2, 0, 0, 0, 0), {2, 35, 35, 35}, {2, 48, 17, 17}},
      {"3x3 s2 valid 3->35 on 35x35", conv(3, 35, 3, 3, 2, 0, 0, 0, 0), {3, 3, 35, 35}, {3, 35, 17, 17}},
      {"5x5 pad 2 48->64", conv(48, 64, 5, 5, 1, 2, 2, 2, 2), {2, 48, 17, 17}, {2, 64, 17, 17}},
      {"1x1 35->3", conv(35, 3, 1, 1, 1, 0, 0, 0, 0), {3, 35, 13, 13}, {3, 3, 13, 13}},
      {"3x3 valid 3->3 odd 11x13", conv(3, 3, 3, 3, 1, 0, 0, 0, 0), {2, 3, 11, 13}, {2, 3, 9, 11}},
      {"1x1 2048->3 on 8x8", conv(2048, 3, 1, 1, 1, 0, 0, 0, 0), {2, 2048, 8, 8}, {2, 3, 8, 8}},
  };}

std::vector<ConvCase> chunked_cases() {
  return {
      {"layer1 16->16 batch 37", conv(16, 16, 3, 3, 1, 1, 1, 1, 1), {37, 16, 32, 32}, {37, 16, 32, 32}},
      {"16->35 3x3 batch 21 on 33x33", conv(16, 35, 3, 3, 1, 1, 1, 1, 1), {21, 16, 33, 33}, {21, 35, 33, 33}},
  };}

std::vector<ConvCase> grouped_cases() {
  return {
      {"G=2 16->32 3x3", grouped(conv(16, 32, 3, 3, 1, 1, 1, 1, 1), 2), {3, 16, 16, 16}, {3, 32, 16, 16}},
      {"G=4 12->20 3x3 s2", grouped(conv(12, 20, 3, 3, 2, 1, 1, 1, 1), 4), {2, 12, 15, 15}, {2, 20, 8, 8}},
      {"G=4 8->8 1x1", grouped(conv(8, 8, 1, 1, 1, 0, 0, 0, 0), 4), {2, 8, 7, 7}, {2, 8, 7, 7}},
      {"depthwise 16 3x3", grouped(conv(16, 16, 3, 3, 1, 1, 1, 1, 1), 16), {3, 16, 16, 16}, {3, 16, 16, 16}},
      {"depthwise 35 3x3 (not a multiple of 8)", grouped(conv(35, 35, 3, 3, 1, 1, 1, 1, 1), 35), {2, 35, 9, 9},
       {2, 35, 9, 9}},
      {"depthwise x2 8->16 tf-same s2", grouped(conv(8, 16, 3, 3, 2, 0, 0, 1, 1), 8), {2, 8, 16, 16},
       {2, 16, 8, 8}},
      {"depthwise 32 batch 37 (chunked)", grouped(conv(32, 32, 3, 3, 1, 1, 1, 1, 1), 32), {37, 32, 32, 32},
       {37, 32, 32, 32}},
  };}

std::vector<ConvCase> dilated_cases() {
  return {
      {"d=2 3x3 pad 2 8->12", grouped(conv(8, 12, 3, 3, 1, 2, 2, 2, 2), 1, 2, 2), {2, 8, 13, 13}, {2, 12, 13, 13}},
      {"d=3 3x3 valid 5->7", grouped(conv(5, 7, 3, 3, 1, 0, 0, 0, 0), 1, 3, 3), {2, 5, 14, 12}, {2, 7, 8, 6}},
      {"dh=2 dw=3 3x3 pad (2,3) 6->10", grouped(conv(6, 10, 3, 3, 1, 2, 3, 2, 3), 1, 2, 3), {2, 6, 11, 10},
       {2, 10, 11, 10}},
      {"d=2 s2 pads t1 l0 b2 r1 8->8", grouped(conv(8, 8, 3, 3, 2, 1, 0, 2, 1), 1, 2, 2), {2, 8, 15, 14},
       {2, 8, 7, 6}},
      {"depthwise d=2 s2 pads t1 l1 b2 r2", grouped(conv(16, 16, 3, 3, 2, 1, 1, 2, 2), 16, 2, 2), {2, 16, 16, 16},
       {2, 16, 8, 8}},
      {"G=2 1x3 dw=2 4->6", grouped(conv(4, 6, 1, 3, 1, 0, 2, 0, 2), 2, 1, 2), {2, 4, 7, 9}, {2, 6, 7, 9}},
  };}

// The spec itself for groups and dilation, by hand: which input channels and cells each
// output reads.
TEST(Conv2dReference, GroupsAndDilationByHand) {
  // 1x1, ones: each output sums its group's channels (dense would give 1+2+3+4 = 10).
  const std::vector<float> x{1, 2, 3, 4}, ones(4, 1.0f);
  std::vector<float> y(2);
  reference::conv2d_forward<float>(grouped(conv(4, 2, 1, 1, 1, 0, 0, 0, 0), 2), 1, 1, 1, x.data(), ones.data(),
                                   nullptr, 1, 1, y.data());
  EXPECT_EQ(y, (std::vector<float>{1 + 2, 3 + 4}));

  // Depthwise with multiplier 2: outputs 0, 1 read channel 0; outputs 2, 3 read channel 1.
  const std::vector<float> w{1, 2, 3, 4};
  y.assign(4, 0.0f);
  reference::conv2d_forward<float>(grouped(conv(2, 4, 1, 1, 1, 0, 0, 0, 0), 2), 1, 1, 1, x.data(), w.data(),
                                   nullptr, 1, 1, y.data());
  EXPECT_EQ(y, (std::vector<float>{1 * 1, 1 * 2, 2 * 3, 2 * 4}));

  // 2x2 ones with dilation (2, 3) on a 5x5 ramp x[h,w] = 5h + w: taps at rows i, i+2 and
  // columns j, j+3, so y[i,j] = 4 (5i + j) + (0 + 3 + 10 + 13); a 3x2 output.
  std::vector<float> ramp(25);
  for (int i = 0; i < 25; ++i) ramp[static_cast<size_t>(i)] = static_cast<float>(i);
  const Conv2dOp dilated = grouped(conv(1, 1, 2, 2, 1, 0, 0, 0, 0), 1, 2, 3);
  ASSERT_EQ(infer_shape(OpParams(dilated), {Shape{1, 1, 5, 5}}, "conv"), (Shape{1, 1, 3, 2}));
  y.assign(6, 0.0f);
  reference::conv2d_forward<float>(dilated, 1, 5, 5, ramp.data(), ones.data(), nullptr, 3, 2, y.data());
  EXPECT_EQ(y, (std::vector<float>{26, 30, 46, 50, 66, 70}));
}

// Every fusion, with and without bias, against the reference.
void check_case(const ConvCase& c, uint32_t seed) {
  ASSERT_EQ(c.input.rank(), 4);
  const auto x = random(c.input.numel(), seed);
  const auto w = random(weight_count(c.op), seed + 1);
  const auto bias = random(c.op.out_channels, seed + 2);
  const auto residual = random(c.expected.numel(), seed + 3);
  for (bool with_bias : {false, true}) {
    const float* b = with_bias ? bias.data() : nullptr;
    const auto conv_bias = reference_conv(c, x, w, b);
    for (bool relu : {false, true})
      for (bool res : {false, true}) {
        ConvFusion f;
        f.relu = relu;
        f.residual = res;
        const std::string what = c.name + " " + c.input.str() + " " + fusion_name(f, with_bias);
        const auto want = reference_epilogue(conv_bias, f, residual);
        const auto got = run_fast(c, f, x, w, b, res ? residual.data() : nullptr, what);
        expect_close(got.data(), want.data(), static_cast<int64_t>(want.size()), kTol, kTol, what);
      }
  }
}

TEST(Conv2dCpu, ResNet20CifarShapesMatchReference) {
  const std::vector<ConvCase> cases = resnet20_cases();

  uint32_t seed = 100;
  for (const auto& c : cases) check_case(c, seed += 10);
}

TEST(Conv2dCpu, ProjectionAndAsymmetricPaddingMatchReference) {
  const std::vector<ConvCase> cases = asymmetric_cases();

  uint32_t seed = 200;
  for (const auto& c : cases) check_case(c, seed += 10);
}

TEST(Conv2dCpu, InceptionLikeShapesMatchReference) {
  const std::vector<ConvCase> cases = inception_cases();

  uint32_t seed = 300;
  for (const auto& c : cases) check_case(c, seed += 10);
}

// Large batches run in chunks of a few MB of activations, the last chunk smaller: both
// primitives (and the shared packed weights and buffers) must agree with the reference.
TEST(Conv2dCpu, LargeBatchRunsInChunksWithASmallerTail) {
  const std::vector<ConvCase> cases = chunked_cases();

  uint32_t seed = 400;
  for (const auto& c : cases) {
    check_case(c, seed += 10);
    const std::string impl = cpu::conv2d_implementation(*cpu::make_conv2d(c.op, c.input, {}));
    EXPECT_NE(impl.find(" tail "), std::string::npos) << c.name << " was not split: " << impl;
  }
}

// Grouped weights go to oneDNN 5-D, (G, O/G, I/G, kh, kw); the depthwise batch of 37 also
// runs in chunks with a smaller tail.
TEST(Conv2dCpu, GroupedAndDepthwiseMatchReference) {
  const std::vector<ConvCase> cases = grouped_cases();

  uint32_t seed = 450;
  for (const auto& c : cases) {
    check_case(c, seed += 10);
    if (c.name.find("chunked") == std::string::npos) continue;
    const std::string impl = cpu::conv2d_implementation(*cpu::make_conv2d(c.op, c.input, {}));
    EXPECT_NE(impl.find(" tail "), std::string::npos) << c.name << " was not split: " << impl;
  }
}

TEST(Conv2dCpu, DilatedMatchReference) {
  const std::vector<ConvCase> cases = dilated_cases();

  uint32_t seed = 470;
  for (const auto& c : cases) check_case(c, seed += 10);
}

// A mutant delta calls set_weights again: the packed copy must follow, bias included
// (and a null bias after a real one means zeros).
TEST(Conv2dCpu, SetWeightsAgainRepacks) {
  for (bool relu_residual : {false, true}) {
    const ConvCase c{"layer2 32->32", conv(32, 32, 3, 3, 1, 1, 1, 1, 1), {3, 32, 16, 16}, {3, 32, 16, 16}};
    ConvFusion f;
    f.relu = f.residual = relu_residual;
    const auto x = random(c.input.numel(), 1), residual = random(c.expected.numel(), 2);
    const auto w1 = random(32 * 32 * 9, 3), w2 = random(32 * 32 * 9, 4), b1 = random(32, 5), b2 = random(32, 6);
    const int64_t n = c.expected.numel();
    const float* res = relu_residual ? residual.data() : nullptr;
    auto kernel = cpu::make_conv2d(c.op, c.input, f);
    std::vector<float> y(static_cast<size_t>(n));

    struct Step {
      const std::vector<float>* w;
      const std::vector<float>* b;
    };
    std::vector<float> previous;
    int index = 0;
    for (Step s : {Step{&w1, &b1}, Step{&w2, &b2}, Step{&w2, nullptr}, Step{&w1, &b1}}) {
      const float* bias = s.b ? s.b->data() : nullptr;
      kernel->set_weights(s.w->data(), bias);
      kernel->forward(x.data(), y.data(), res);
      const auto want = reference_epilogue(reference_conv(c, x, *s.w, bias), f, residual);
      const std::string what = "set_weights call " + std::to_string(++index) + (relu_residual ? " relu+res" : "");
      expect_close(y.data(), want.data(), n, kTol, kTol, what);
      if (!previous.empty()) {
        EXPECT_NE(previous, y) << what << ": output did not change with the weights";
      }
      previous = y;
    }
  }
}

// set_filters (a mutant's sparse delta) on both host backends: patching some filters gives,
// bit for bit, what set_weights with the patched weights gives (forward and backward_data,
// including after backward_data packed its own weights), the bias stays, and patching the old
// filters back restores the original outputs.
TEST(Conv2dSetFilters, EqualsSetWeightsOfThePatchedWeightsOnBothHostBackends) {
  const std::vector<ConvCase> cases = {
      {"plain 8->12", conv(8, 12, 3, 3, 1, 1, 1, 1, 1), {2, 8, 9, 9}, {2, 12, 9, 9}},
      {"grouped 8->12 /4 dilated", grouped(conv(8, 12, 3, 3, 2, 2, 1, 1, 2), 4, 2, 1), {2, 8, 9, 9}, {}}};
  for (const ConvCase& c : cases)
    for (const char* kind : {"cpu", "reference"}) {
      SCOPED_TRACE(c.name + " on " + kind);
      auto backend = make_backend(kind);
      ConvFusion fusion;
      fusion.relu = true;
      const Shape out = infer_shape(c.op, {c.input}, "conv");
      const int64_t size = weight_count(c.op) / c.op.out_channels;
      const auto x = random(c.input.numel(), 7), dy = random(out.numel(), 8), w = random(weight_count(c.op), 9),
                 bias = random(c.op.out_channels, 10), fresh = random(2 * size, 11);
      const std::vector<int64_t> filters{5, 0};
      const FilterPatch patch = patch_filters(w, size, filters, fresh);
      auto run = [&](Conv2dKernel& k) {
        std::vector<float> y(static_cast<size_t>(out.numel())), dx(static_cast<size_t>(c.input.numel()));
        k.forward(x.data(), y.data(), nullptr);
        k.backward_data(dy.data(), dx.data(), false);
        y.insert(y.end(), dx.begin(), dx.end());
        return y;
      };
      auto whole = backend->make_conv2d(c.op, c.input, fusion), sparse = backend->make_conv2d(c.op, c.input, fusion);
      whole->set_weights(w.data(), bias.data());
      sparse->set_weights(w.data(), bias.data());
      const std::vector<float> original = run(*sparse);  // backward_data has packed its weights now
      sparse->set_filters(filters, fresh.data());
      whole->set_weights(patch.patched.data(), bias.data());
      const std::vector<float> changed = run(*sparse);
      EXPECT_EQ(changed, run(*whole));
      EXPECT_NE(changed, original);
      sparse->set_filters(filters, patch.old_values.data());
      EXPECT_EQ(run(*sparse), original);

      EXPECT_THROW(sparse->set_filters({c.op.out_channels}, fresh.data()), Error);
      EXPECT_THROW(sparse->set_filters({1, 1}, fresh.data()), Error);
      EXPECT_THROW(sparse->set_filters({1}, nullptr), Error);
      auto unset = backend->make_conv2d(c.op, c.input, fusion);
      try {
        unset->set_filters({1}, fresh.data());
        ADD_FAILURE() << "expected veto::Error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("set_filters before set_weights"), std::string::npos) << e.what();
      }
    }
}

// The executor may add the residual in place: y and the residual are the same buffer.
TEST(Conv2dCpu, ResidualMayBeTheOutputBuffer) {
  const ConvCase c{"layer1 16->16", conv(16, 16, 3, 3, 1, 1, 1, 1, 1), {2, 16, 32, 32}, {2, 16, 32, 32}};
  ConvFusion f;
  f.relu = f.residual = true;
  const auto x = random(c.input.numel(), 11), w = random(16 * 16 * 9, 12), b = random(16, 13);
  const auto residual = random(c.expected.numel(), 14);
  const auto want = reference_epilogue(reference_conv(c, x, w, b.data()), f, residual);
  auto kernel = cpu::make_conv2d(c.op, c.input, f);
  kernel->set_weights(w.data(), b.data());
  std::vector<float> y = residual;
  kernel->forward(x.data(), y.data(), y.data());
  expect_close(y.data(), want.data(), c.expected.numel(), kTol, kTol, "in-place residual");
}

// --- backward_data -------------------------------------------------------------------------

// conv_transpose(dy, w) in double through the reference loops.
std::vector<double> reference_backward(const ConvCase& c, const std::vector<float>& dy, const std::vector<float>& w) {
  const std::vector<double> dyd(dy.begin(), dy.end()), wd(w.begin(), w.end());
  std::vector<double> dx(static_cast<size_t>(c.input.numel()));
  reference::conv2d_backward_data<double>(c.op, c.input[0], c.input[2], c.input[3], dyd.data(), wd.data(),
                                          c.expected[2], c.expected[3], dx.data());
  return dx;
}

// One backward_data call into a copy of `prefill` followed by guard sentinels; checks the
// guards and that no NaN is left (with a NaN prefill that proves every element was written).
std::vector<float> run_backward(Conv2dKernel& kernel, const ConvCase& c, const std::vector<float>& dy,
                                const std::vector<float>& prefill, bool accumulate, const std::string& what) {
  const int64_t n = c.input.numel();
  std::vector<float> dx = prefill;
  dx.resize(static_cast<size_t>(n + kGuard), std::numeric_limits<float>::quiet_NaN());
  kernel.backward_data(dy.data(), dx.data(), accumulate);
  for (int64_t i = n; i < n + kGuard; ++i) EXPECT_TRUE(std::isnan(dx[i])) << what << ": wrote past dx";
  dx.resize(static_cast<size_t>(n));
  int64_t nans = 0;
  for (float v : dx) nans += std::isnan(v);
  EXPECT_EQ(nans, 0) << what << ": NaN (or unwritten) gradients with " << cpu::conv2d_backward_implementation(kernel);
  return dx;
}

// Overwrite and accumulate against the reference. The kernel's fusion must not matter:
// backward_data is the convolution's gradient alone.
void check_backward_case(const ConvCase& c, uint32_t seed) {
  ASSERT_EQ(infer_shape(OpParams(c.op), {c.input}, "conv"), c.expected) << c.name;
  const auto dy = random(c.expected.numel(), seed);
  const auto w = random(weight_count(c.op), seed + 1);
  const auto bias = random(c.op.out_channels, seed + 2);
  const auto prefill = random(c.input.numel(), seed + 3);
  const std::vector<float> nan(static_cast<size_t>(c.input.numel()), std::numeric_limits<float>::quiet_NaN());
  const auto want = reference_backward(c, dy, w);
  std::vector<float> want_overwrite(want.size()), want_accumulate(want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    want_overwrite[i] = static_cast<float>(want[i]);
    want_accumulate[i] = static_cast<float>(want[i] + prefill[i]);
  }
  for (bool fused : {false, true}) {
    ConvFusion f;
    f.relu = f.residual = fused;
    auto kernel = cpu::make_conv2d(c.op, c.input, f);
    kernel->set_weights(w.data(), bias.data());
    const std::string what = c.name + " " + c.input.str() + (fused ? " (made with relu+residual)" : "");
    const auto overwritten = run_backward(*kernel, c, dy, nan, false, what + " overwrite");
    expect_close(overwritten.data(), want_overwrite.data(), c.input.numel(), kTol, kTol, what + " overwrite");
    const auto accumulated = run_backward(*kernel, c, dy, prefill, true, what + " accumulate");
    expect_close(accumulated.data(), want_accumulate.data(), c.input.numel(), kTol, kTol, what + " accumulate");
  }
}

TEST(Conv2dCpuBackward, ResNet20CifarShapesMatchReference) {
  const std::vector<ConvCase> cases = resnet20_cases();

  uint32_t seed = 500;
  for (const auto& c : cases) check_backward_case(c, seed += 10);
}

TEST(Conv2dCpuBackward, ProjectionAndAsymmetricPaddingMatchReference) {
  const std::vector<ConvCase> cases = asymmetric_cases();

  uint32_t seed = 600;
  for (const auto& c : cases) check_backward_case(c, seed += 10);
}

TEST(Conv2dCpuBackward, InceptionLikeShapesMatchReference) {
  const std::vector<ConvCase> cases = inception_cases();

  uint32_t seed = 700;
  for (const auto& c : cases) check_backward_case(c, seed += 10);
}

TEST(Conv2dCpuBackward, LargeBatchRunsInChunksWithASmallerTail) {
  const std::vector<ConvCase> cases = chunked_cases();

  uint32_t seed = 800;
  for (const auto& c : cases) {
    check_backward_case(c, seed += 10);
    auto kernel = cpu::make_conv2d(c.op, c.input, {});
    const auto w = random(c.op.out_channels * c.op.in_channels * 9, 1);
    kernel->set_weights(w.data(), nullptr);
    EXPECT_EQ(cpu::conv2d_backward_implementation(*kernel), "") << "built before the first backward_data";
    std::vector<float> dy(static_cast<size_t>(c.expected.numel()), 1.0f), dx(static_cast<size_t>(c.input.numel()));
    kernel->backward_data(dy.data(), dx.data(), false);
    const std::string impl = cpu::conv2d_backward_implementation(*kernel);
    EXPECT_NE(impl.find(" tail "), std::string::npos) << c.name << " was not split: " << impl;
  }
}

TEST(Conv2dCpuBackward, GroupedAndDepthwiseMatchReference) {
  const std::vector<ConvCase> cases = grouped_cases();

  uint32_t seed = 850;
  for (const auto& c : cases) check_backward_case(c, seed += 10);
}

TEST(Conv2dCpuBackward, DilatedMatchReference) {
  const std::vector<ConvCase> cases = dilated_cases();

  uint32_t seed = 870;
  for (const auto& c : cases) check_backward_case(c, seed += 10);
}

// Mutants change the weights between calls: backward_data must use the latest set_weights,
// whether its packed copy was made before (repacked by set_weights) or after (packed from
// the forward's copy). Forward and backward share native buffers, so they are interleaved.
TEST(Conv2dCpuBackward, FollowsEverySetWeightsAndInterleavesWithForward) {
  for (const ConvCase& c : {ConvCase{"layer2 32->32", conv(32, 32, 3, 3, 1, 1, 1, 1, 1), {3, 32, 16, 16},
                                     {3, 32, 16, 16}},
                            ConvCase{"layer1 16->16 batch 37", conv(16, 16, 3, 3, 1, 1, 1, 1, 1), {37, 16, 32, 32},
                                     {37, 16, 32, 32}},
                            ConvCase{"7x1 48->35", conv(48, 35, 7, 1, 1, 3, 0, 3, 0), {2, 48, 17, 17},
                                     {2, 35, 17, 17}},
                            ConvCase{"depthwise d=2 16", grouped(conv(16, 16, 3, 3, 1, 2, 2, 2, 2), 16, 2, 2),
                                     {3, 16, 12, 12}, {3, 16, 12, 12}}}) {
    const int64_t wn = weight_count(c.op);
    const auto x = random(c.input.numel(), 21), dy = random(c.expected.numel(), 22);
    const auto w1 = random(wn, 23), w2 = random(wn, 24), b = random(c.op.out_channels, 25);
    ConvFusion f;
    f.relu = true;
    auto kernel = cpu::make_conv2d(c.op, c.input, f);
    const std::vector<float> nan(static_cast<size_t>(c.input.numel()), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> y(static_cast<size_t>(c.expected.numel()));
    const auto check_forward = [&](const std::vector<float>& w, const std::string& what) {
      kernel->forward(x.data(), y.data(), nullptr);
      const auto want = reference_epilogue(reference_conv(c, x, w, b.data()), f, {});
      expect_close(y.data(), want.data(), c.expected.numel(), kTol, kTol, c.name + " forward " + what);
    };
    const auto check_backward = [&](const std::vector<float>& w, const std::string& what) {
      const auto got = run_backward(*kernel, c, dy, nan, false, c.name + " " + what);
      const auto want = reference_backward(c, dy, w);
      const std::vector<float> want_f(want.begin(), want.end());
      expect_close(got.data(), want_f.data(), c.input.numel(), kTol, kTol, c.name + " backward " + what);
      return got;
    };
    kernel->set_weights(w1.data(), b.data());
    check_forward(w1, "w1");
    const auto g1 = check_backward(w1, "w1 (first backward: packed from the forward's copy)");
    check_forward(w1, "w1 after backward");
    kernel->set_weights(w2.data(), b.data());
    const auto g2 = check_backward(w2, "w2 (repacked by set_weights)");
    EXPECT_NE(g1, g2) << c.name << ": the gradient did not change with the weights";
    check_forward(w2, "w2 after backward");
    kernel->set_weights(w1.data(), nullptr);
    EXPECT_EQ(check_backward(w1, "w1 again"), g1) << c.name << ": not the same gradient for the same weights";
  }
}

TEST(Conv2dCpu, BadUseThrowsVetoError) {
  const Conv2dOp op = conv(16, 16, 3, 3, 1, 1, 1, 1, 1);
  EXPECT_THROW(cpu::make_conv2d(op, Shape{2, 3, 32, 32}, {}), Error);     // channel mismatch
  EXPECT_THROW(cpu::make_conv2d(op, Shape{2, 16, 32}, {}), Error);        // not rank 4
  EXPECT_THROW(cpu::make_conv2d(conv(16, 16, 5, 5, 1, 0, 0, 0, 0), Shape{1, 16, 3, 3}, {}), Error);  // too small
  EXPECT_THROW(cpu::make_conv2d(conv(16, 16, 3, 3, 0, 1, 1, 1, 1), Shape{1, 16, 8, 8}, {}), Error);  // stride 0
  EXPECT_THROW(cpu::make_conv2d(grouped(op, 3), Shape{1, 16, 8, 8}, {}), Error);        // 3 groups of 16
  EXPECT_THROW(cpu::make_conv2d(grouped(op, 1, 0, 1), Shape{1, 16, 8, 8}, {}), Error);  // dilation 0
  EXPECT_THROW(cpu::make_conv2d(grouped(op, 1, 4, 4), Shape{1, 16, 6, 6}, {}), Error);  // window 9 > 6 + 2
  try {
    auto dilated = cpu::make_conv2d(grouped(op, 4, 2, 3), Shape{1, 16, 8, 8}, {});
    std::vector<float> dy(16 * 8 * 8), dx(16 * 8 * 8);
    dilated->backward_data(dy.data(), dx.data(), false);  // before set_weights
    ADD_FAILURE() << "expected veto::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dilation 2x3 groups 4"), std::string::npos) << e.what();
  }

  ConvFusion with_residual;
  with_residual.residual = true;
  auto kernel = cpu::make_conv2d(op, Shape{1, 16, 8, 8}, with_residual);
  std::vector<float> x(16 * 64, 1.0f), y(16 * 64), w(16 * 16 * 9, 0.1f);
  EXPECT_THROW(kernel->forward(x.data(), y.data(), y.data()), Error);  // before set_weights
  EXPECT_THROW(kernel->backward_data(y.data(), x.data(), false), Error);  // before set_weights
  kernel->set_weights(w.data(), nullptr);
  EXPECT_THROW(kernel->forward(x.data(), y.data(), nullptr), Error);  // residual missing
  EXPECT_THROW(kernel->forward(x.data(), x.data(), x.data()), Error);  // output overlaps input
  EXPECT_THROW(kernel->set_weights(nullptr, nullptr), Error);
  EXPECT_THROW(kernel->backward_data(y.data(), y.data(), false), Error);  // dx overlaps dy
  EXPECT_THROW(kernel->backward_data(nullptr, x.data(), true), Error);
  try {
    kernel->backward_data(y.data(), y.data() + 1, true);
    ADD_FAILURE() << "expected veto::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d 16->16 3x3"), std::string::npos) << e.what();
  }
  try {
    kernel->forward(x.data(), y.data(), nullptr);
    ADD_FAILURE() << "expected veto::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d 16->16 3x3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace veto
