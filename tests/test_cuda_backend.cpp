// The CUDA backend against the reference backend, op by op, on shapes from the real models
// (odd channels, 1x7/7x1, stride-2 valid, asymmetric "same" padding, grouped, depthwise and
// dilated convolutions, batch > 1). Every test skips (GTEST_SKIP) where there is no CUDA device
// or the build has no CUDA backend; the per-element math of the custom kernels is also tested on
// the host in test_cuda_host_kernels.cpp, which runs everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/element_math.h"
#include "runtime/backend.h"
#include "runtime/dataset.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/inference.h"
#include "runtime/lcr.h"
#include "runtime/model.h"
#include "runtime/mutation.h"
#include "runtime/ops.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Runs one op on a backend: inputs uploaded, the output pre-filled with NaN (a sentinel: an
// element the kernel forgets to write fails the finiteness check) or with `initial` when given
// (what an accumulating kernel adds to), result downloaded.
using OpCall = std::function<void(Backend&, const std::vector<const float*>&, float*)>;

std::vector<float> run_op(Backend& backend, const std::vector<std::vector<float>>& inputs, size_t out_count,
                          const OpCall& call, const std::vector<float>& initial = {}) {
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<const float*> pointers;
  for (const std::vector<float>& in : inputs) {
    buffers.push_back(backend.allocate(in.size()));
    backend.upload(in.data(), buffers.back()->data(), in.size());
    pointers.push_back(buffers.back()->data());
  }
  std::unique_ptr<DeviceBuffer> out = backend.allocate(out_count);
  const std::vector<float> start = initial.empty() ? std::vector<float>(out_count, NAN) : initial;
  backend.upload(start.data(), out->data(), out_count);
  call(backend, pointers, out->data());
  backend.synchronize();
  std::vector<float> result(out_count);
  backend.download(out->data(), result.data(), out_count);
  return result;
}

size_t conv_weight_count(const Conv2dOp& op) {
  return static_cast<size_t>(op.out_channels * (op.in_channels / op.groups) * op.kernel_h * op.kernel_w);
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      cuda_ = make_backend("cuda");
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find("no CUDA device") != std::string::npos || what.find("without CUDA") != std::string::npos)
        GTEST_SKIP() << what;
      FAIL() << "CUDA backend failed to start: " << what;
    }
    reference_ = make_backend("reference");
  }

  // Same op, same inputs on both backends; shapes first, then values with abs + rel tolerance.
  void expect_parity(const std::vector<std::vector<float>>& inputs, size_t out_count, const OpCall& call,
                     float atol = 1e-5f, float rtol = 1e-5f, const std::vector<float>& initial = {}) {
    const std::vector<float> want = run_op(*reference_, inputs, out_count, call, initial);
    const std::vector<float> got = run_op(*cuda_, inputs, out_count, call, initial);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "CUDA output " << i << " is " << got[i];
      ASSERT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << "output index " << i;
    }
  }

  // One convolution on both backends, fresh kernel, weights set once.
  void expect_conv_parity(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion, bool with_bias) {
    const Shape out = infer_shape(op, {input}, "conv");
    const std::vector<float> weight = random_values(conv_weight_count(op), 21),
                             bias = random_values(op.out_channels, 22);
    expect_parity(
        {random_values(input.numel(), 20), random_values(out.numel(), 23)}, out.numel(),
        [&](Backend& b, const auto& in, float* y) {
          std::unique_ptr<Conv2dKernel> kernel = b.make_conv2d(op, input, fusion);
          kernel->set_weights(weight.data(), with_bias ? bias.data() : nullptr);
          kernel->forward(in[0], y, fusion.residual ? in[1] : nullptr);
          b.synchronize();
        },
        1e-4f, 1e-4f);
  }

  // A data-gradient kernel both ways: overwriting dx (over the NaN sentinel) and accumulating
  // into a dx that already holds values.
  using BackwardCall = std::function<void(Backend&, const std::vector<const float*>&, float*, bool)>;
  void expect_backward_parity(const std::vector<std::vector<float>>& inputs, size_t dx_count,
                              const BackwardCall& call, float atol = 1e-5f, float rtol = 1e-5f) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
      expect_parity(
          inputs, dx_count, [&](Backend& b, const auto& in, float* dx) { call(b, in, dx, accumulate); }, atol, rtol,
          accumulate ? random_values(dx_count, 98) : std::vector<float>{});
    }
  }

  // One convolution's data gradient on both backends, fresh kernel, weights set once.
  void expect_conv_backward_parity(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion) {
    const Shape out = infer_shape(op, {input}, "conv");
    const std::vector<float> weight = random_values(conv_weight_count(op), 24),
                             bias = random_values(op.out_channels, 25);
    expect_backward_parity(
        {random_values(out.numel(), 26)}, input.numel(),
        [&](Backend& b, const auto& in, float* dx, bool accumulate) {
          std::unique_ptr<Conv2dKernel> kernel = b.make_conv2d(op, input, fusion);
          kernel->set_weights(weight.data(), bias.data());  // the bias has no data gradient
          kernel->backward_data(in[0], dx, accumulate);
          b.synchronize();
        },
        1e-4f, 1e-4f);
  }

  std::unique_ptr<Backend> cuda_, reference_;
};

TEST_F(CudaBackendTest, NameAndThreads) {
  EXPECT_EQ(cuda_->name(), "cuda");
  EXPECT_NO_THROW(cuda_->set_threads(0));
  EXPECT_NO_THROW(cuda_->set_threads(4));
  EXPECT_THROW(cuda_->set_threads(-1), Error);
}

TEST_F(CudaBackendTest, UploadDownloadRoundTripAndBufferReuse) {
  for (size_t n : {size_t(0), size_t(1), size_t(1000), size_t(3) << 20}) {
    const std::vector<float> values = random_values(n, 1);
    for (int round = 0; round < 3; ++round) {  // freed buffers come back from the cache
      std::unique_ptr<DeviceBuffer> buffer = cuda_->allocate(n);
      ASSERT_NE(buffer->data(), nullptr);
      ASSERT_EQ(buffer->size(), n);
      cuda_->upload(values.data(), buffer->data(), n);
      std::vector<float> back(n, -1.0f);
      cuda_->download(buffer->data(), back.data(), n);
      ASSERT_EQ(back, values);
    }
  }
  // A copy into the middle of a buffer touches only that range.
  std::unique_ptr<DeviceBuffer> buffer = cuda_->allocate(10);
  const std::vector<float> zeros(10, 0.0f), three = {1.0f, 2.0f, 3.0f};
  cuda_->upload(zeros.data(), buffer->data(), 10);
  cuda_->upload(three.data(), buffer->data() + 4, 3);
  std::vector<float> back(10);
  cuda_->download(buffer->data(), back.data(), 10);
  EXPECT_EQ(back, (std::vector<float>{0, 0, 0, 0, 1, 2, 3, 0, 0, 0}));
}

TEST_F(CudaBackendTest, Relu) {
  const int64_t n = 100003;
  expect_parity({random_values(n, 2)}, n, [&](Backend& b, const auto& in, float* y) { b.relu_forward(n, in[0], y); });
}

TEST_F(CudaBackendTest, Add) {
  const int64_t n = 3 * 17 * 9 * 9;
  for (bool relu : {false, true})
    expect_parity({random_values(n, 3), random_values(n, 4)}, n,
                  [&](Backend& b, const auto& in, float* y) { b.add_forward(n, in[0], in[1], y, relu); });
}

TEST_F(CudaBackendTest, BatchNorm) {
  BatchNormOp op;
  op.channels = 17;
  op.eps = 1e-3f;
  const Shape s{3, 17, 9, 7};
  const int64_t c = op.channels;
  expect_parity({random_values(s.numel(), 5), random_values(c, 6), random_values(c, 7), random_values(c, 8),
                 random_values(c, 9, 0.05f, 2.0f)},
                s.numel(), [&](Backend& b, const auto& in, float* y) {
                  b.batch_norm_forward(op, s, in[0], in[1], in[2], in[3], in[4], y);
                });
}

// ResNet option-A shortcuts (forward and backward parity): input shape and op.
struct ShortcutCase {
  Shape input;
  ZeroPadShortcutOp op;
};
const ShortcutCase kShortcutCases[] = {
    {Shape{3, 16, 32, 32}, {2, 8, 8}}, {Shape{3, 5, 7, 7}, {2, 1, 2}}, {Shape{2, 4, 5, 6}, {3, 0, 3}}};

TEST_F(CudaBackendTest, ZeroPadShortcut) {
  for (const ShortcutCase& k : kShortcutCases) {
    const ZeroPadShortcutOp op = k.op;
    const Shape out = infer_shape(op, {k.input}, "shortcut");
    expect_parity({random_values(k.input.numel(), 10)}, out.numel(),
                  [&](Backend& b, const auto& in, float* y) { b.zero_pad_shortcut_forward(op, k.input, in[0], y); });
  }
}

TEST_F(CudaBackendTest, GlobalAvgPool) {
  for (const Shape& s : {Shape{3, 64, 8, 8}, Shape{3, 7, 17, 17}, Shape{2, 5, 1, 1}, Shape{1, 3, 35, 35}})
    expect_parity({random_values(s.numel(), 11)}, s[0] * s[1],
                  [&](Backend& b, const auto& in, float* y) { b.global_avg_pool_forward(s, in[0], y); });
}

TEST_F(CudaBackendTest, AvgPool) {
  struct Case {
    Shape input;
    int64_t kh, kw, sh, sw, top, left, bottom, right;
  };
  for (const Case& k : {Case{Shape{3, 7, 8, 8}, 3, 3, 1, 1, 1, 1, 1, 1},  // Inception's branch pool
                        Case{Shape{3, 5, 7, 9}, 2, 2, 2, 2, 0, 0, 0, 0},  // stride 2, odd input
                        Case{Shape{2, 3, 6, 6}, 3, 3, 2, 2, 0, 0, 1, 1},  // asymmetric "same"
                        Case{Shape{3, 4, 17, 17}, 5, 5, 3, 3, 0, 0, 0, 0}})
    for (bool include_pad : {true, false}) {
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
      const Shape out = infer_shape(op, {k.input}, "pool");
      expect_parity({random_values(k.input.numel(), 12)}, out.numel(),
                    [&](Backend& b, const auto& in, float* y) { b.avg_pool_forward(op, k.input, in[0], y); });
    }
}

TEST_F(CudaBackendTest, MaxPool) {
  for (const Shape& input : {Shape{3, 7, 35, 35}, Shape{2, 5, 8, 8}}) {
    const MaxPoolOp op{3, 3, 2, 2, 0, 0, 0, 0};  // InceptionV3's stride-2 valid pools
    const Shape out = infer_shape(op, {input}, "pool");
    expect_parity({random_values(input.numel(), 21)}, out.numel(),
                  [&](Backend& b, const auto& in, float* y) { b.max_pool_forward(op, input, in[0], y); });
  }
}

TEST_F(CudaBackendTest, ConcatIntoChannelSlices) {
  const Shape a{3, 5, 7, 7}, b{3, 2, 7, 7};
  expect_parity({random_values(a.numel(), 22), random_values(b.numel(), 23)}, 3 * 7 * 7 * 7,
                [&](Backend& be, const auto& in, float* y) {
                  be.concat_forward(a, 0, 7, in[0], y);
                  be.concat_forward(b, 5, 7, in[1], y);
                });
}

TEST_F(CudaBackendTest, ChannelAffine) {
  const Shape s{2, 3, 9, 11};
  const ChannelAffineOp op{{0.458f, 0.448f, 0.45f}, {-0.03f, -0.088f, -0.188f}};
  expect_parity({random_values(s.numel(), 24)}, s.numel(),
                [&](Backend& b, const auto& in, float* y) { b.channel_affine_forward(op, s, in[0], y); });
}

TEST_F(CudaBackendTest, Clip) {
  const int64_t n = 100003;
  for (const ClipOp& op : {ClipOp{0, 6}, ClipOp{-0.5f, 0.25f}})
    expect_parity({random_values(n, 25, -8.0f, 8.0f)}, n,
                  [&](Backend& b, const auto& in, float* y) { b.clip_forward(op, n, in[0], y); });
}

// Slices (forward and backward parity): input shape and op.
struct SliceCase {
  Shape input;
  SliceOp op;
};
const SliceCase kSliceCases[] = {
    {Shape{3, 16, 32, 32}, {{0, 1, 1}, {1, 2, 2}, {16, 16, 16}}},  // x[:, :, 1::2, 1::2]
    {Shape{2, 24, 17, 17}, {{8, 0, 0}, {1, 1, 1}, {12, 17, 17}}},  // a channel split
    {Shape{2, 7, 13, 11}, {{1, 2, 3}, {2, 3, 2}, {3, 4, 4}}},
};

TEST_F(CudaBackendTest, Slice) {
  for (const SliceCase& k : kSliceCases) {
    const Shape out = infer_shape(k.op, {k.input}, "slice");
    expect_parity({random_values(k.input.numel(), 26)}, out.numel(),
                  [&](Backend& b, const auto& in, float* y) { b.slice_forward(k.op, k.input, in[0], y); });
  }
}

// Pads (forward and backward parity): input shape and op.
struct PadCase {
  Shape input;
  PadOp op;
};
const PadCase kPadCases[] = {
    {Shape{3, 3, 32, 32}, {{0, 0, 0}, {0, 1, 1}, 0.0f}},  // TensorFlow "same", stride 2
    {Shape{2, 5, 7, 9}, {{2, 0, 3}, {1, 2, 0}, -0.5f}},
};

TEST_F(CudaBackendTest, Pad) {
  for (const PadCase& k : kPadCases) {
    const Shape out = infer_shape(k.op, {k.input}, "pad");
    expect_parity({random_values(k.input.numel(), 27)}, out.numel(),
                  [&](Backend& b, const auto& in, float* y) { b.pad_forward(k.op, k.input, in[0], y); });
  }
}

TEST_F(CudaBackendTest, Dense) {
  struct Case {
    int64_t batch, in, out;
    bool bias;
  };
  for (const Case& k :
       {Case{3, 64, 10, true}, Case{3, 64, 10, false}, Case{5, 2048, 1000, true}, Case{1, 7, 3, true}}) {
    DenseOp op;
    op.in_features = k.in;
    op.out_features = k.out;
    op.has_bias = k.bias;
    expect_parity({random_values(k.batch * k.in, 13), random_values(k.out * k.in, 14), random_values(k.out, 15)},
                  k.batch * k.out,
                  [&](Backend& b, const auto& in, float* y) {
                    b.dense_forward(op, k.batch, in[0], in[1], k.bias ? in[2] : nullptr, y);
                  },
                  // The reference sums in sequence; its rounding grows with the length of the sum.
                  5e-7f * static_cast<float>(k.in) + 1e-5f, 1e-4f);
  }
}

TEST_F(CudaBackendTest, Softmax) {
  for (int64_t cols : {1, 10, 1000, 1001}) {
    const int64_t rows = 5;
    std::vector<float> x = random_values(rows * cols, 16, -8.0f, 8.0f);
    for (int64_t c = 0; c < cols; ++c) x[4 * cols + c] += 500.0f;  // needs the max shift
    expect_parity({x}, rows * cols,
                  [&](Backend& b, const auto& in, float* y) { b.softmax_forward(rows, cols, in[0], y); }, 1e-6f,
                  1e-4f);
  }
}

Conv2dOp conv_op(int64_t in_c, int64_t out_c, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t top,
                 int64_t left, int64_t bottom, int64_t right) {
  Conv2dOp op;
  op.in_channels = in_c;
  op.out_channels = out_c;
  op.kernel_h = kh;
  op.kernel_w = kw;
  op.stride_h = sh;
  op.stride_w = sw;
  op.pad_top = top;
  op.pad_left = left;
  op.pad_bottom = bottom;
  op.pad_right = right;
  return op;
}

TEST_F(CudaBackendTest, Conv2dEveryFusion) {
  const Conv2dOp op = conv_op(16, 16, 3, 3, 1, 1, 1, 1, 1, 1);
  const Shape input{3, 16, 8, 8};
  for (bool bias : {false, true})
    for (bool residual : {false, true})
      for (bool relu : {false, true}) {
        SCOPED_TRACE(testing::Message() << "bias " << bias << " residual " << residual << " relu " << relu);
        expect_conv_parity(op, input, ConvFusion{relu, residual}, bias);
      }
}

// Convolutions of the real models' kinds (forward and backward parity).
struct ConvShapeCase {
  const char* what;
  Conv2dOp op;
  Shape input;
};
std::vector<ConvShapeCase> conv_model_shapes() {
  return {
      {"resnet stem 3x3", conv_op(3, 16, 3, 3, 1, 1, 1, 1, 1, 1), Shape{3, 3, 32, 32}},
      {"3x3 stride 2, pad 1", conv_op(16, 32, 3, 3, 2, 2, 1, 1, 1, 1), Shape{3, 16, 32, 32}},
      {"stride-2 valid, odd input", conv_op(3, 32, 3, 3, 2, 2, 0, 0, 0, 0), Shape{3, 3, 35, 35}},
      {"TF same stride 2 (asymmetric)", conv_op(5, 7, 3, 3, 2, 2, 0, 0, 1, 1), Shape{3, 5, 16, 16}},
      {"asymmetric both axes", conv_op(3, 5, 3, 3, 1, 1, 2, 0, 1, 3), Shape{3, 3, 9, 7}},
      {"more padding left than right", conv_op(3, 5, 3, 3, 2, 1, 0, 2, 1, 0), Shape{3, 3, 6, 5}},
      {"1x7", conv_op(7, 9, 1, 7, 1, 1, 0, 3, 0, 3), Shape{3, 7, 17, 17}},
      {"7x1", conv_op(7, 9, 7, 1, 1, 1, 3, 0, 3, 0), Shape{3, 7, 17, 17}},
      {"1x1 stride 2", conv_op(16, 32, 1, 1, 2, 2, 0, 0, 0, 0), Shape{3, 16, 15, 15}},
      {"even kernel same", conv_op(4, 6, 2, 2, 1, 1, 0, 0, 1, 1), Shape{3, 4, 6, 5}},
  };
}

Conv2dOp grouped(Conv2dOp op, int64_t groups, int64_t dilation_h = 1, int64_t dilation_w = 1) {
  op.groups = groups;
  op.dilation_h = dilation_h;
  op.dilation_w = dilation_w;
  return op;
}

// Grouped, depthwise and dilated (cudnnSetConvolutionGroupCount, the descriptor's dilations),
// also with the asymmetric padding that goes through the explicitly padded copy.
std::vector<ConvShapeCase> conv_grouped_dilated_shapes() {
  return {
      {"2 groups", grouped(conv_op(16, 32, 3, 3, 1, 1, 1, 1, 1, 1), 2), Shape{3, 16, 16, 16}},
      {"4 groups stride 2", grouped(conv_op(12, 20, 3, 3, 2, 2, 1, 1, 1, 1), 4), Shape{2, 12, 15, 15}},
      {"depthwise", grouped(conv_op(16, 16, 3, 3, 1, 1, 1, 1, 1, 1), 16), Shape{3, 16, 16, 16}},
      {"depthwise odd channels", grouped(conv_op(35, 35, 3, 3, 1, 1, 1, 1, 1, 1), 35), Shape{2, 35, 9, 9}},
      {"depthwise x2, TF same stride 2", grouped(conv_op(8, 16, 3, 3, 2, 2, 0, 0, 1, 1), 8), Shape{2, 8, 16, 16}},
      {"dilation 2", grouped(conv_op(8, 12, 3, 3, 1, 1, 2, 2, 2, 2), 1, 2, 2), Shape{2, 8, 13, 13}},
      {"dilation 3 valid", grouped(conv_op(5, 7, 3, 3, 1, 1, 0, 0, 0, 0), 1, 3, 3), Shape{2, 5, 14, 12}},
      {"dilation (2,3)", grouped(conv_op(6, 10, 3, 3, 1, 1, 2, 3, 2, 3), 1, 2, 3), Shape{2, 6, 11, 10}},
      {"dilation 2 stride 2 asymmetric", grouped(conv_op(8, 8, 3, 3, 2, 2, 1, 0, 2, 1), 1, 2, 2),
       Shape{2, 8, 15, 14}},
      {"depthwise dilation 2 stride 2 asymmetric", grouped(conv_op(16, 16, 3, 3, 2, 2, 1, 1, 2, 2), 16, 2, 2),
       Shape{2, 16, 16, 16}},
  };
}

TEST_F(CudaBackendTest, Conv2dGroupedDepthwiseDilated) {
  for (const ConvShapeCase& k : conv_grouped_dilated_shapes()) {
    SCOPED_TRACE(k.what);
    expect_conv_parity(k.op, k.input, ConvFusion{true, true}, true);
  }
}

TEST_F(CudaBackendTest, Conv2dModelShapes) {
  for (const ConvShapeCase& k : conv_model_shapes()) {
    SCOPED_TRACE(k.what);
    expect_conv_parity(k.op, k.input, ConvFusion{true, false}, true);
  }
}

TEST_F(CudaBackendTest, Conv2dSetWeightsAgainReplacesThem) {
  const Conv2dOp op = conv_op(4, 4, 3, 3, 1, 1, 1, 1, 1, 1);
  const Shape input{2, 4, 6, 6};
  const Shape out = infer_shape(op, {input}, "conv");
  const std::vector<float> x = random_values(input.numel(), 30), w1 = random_values(4 * 4 * 9, 31),
                           w2 = random_values(4 * 4 * 9, 32), bias = random_values(4, 33);
  auto run = [&](Backend& b) {
    std::unique_ptr<Conv2dKernel> kernel = b.make_conv2d(op, input, ConvFusion{});
    std::unique_ptr<DeviceBuffer> dx = b.allocate(x.size()), dy = b.allocate(out.numel());
    b.upload(x.data(), dx->data(), x.size());
    std::vector<float> first(out.numel()), second(out.numel());
    kernel->set_weights(w1.data(), nullptr);
    kernel->forward(dx->data(), dy->data(), nullptr);
    b.download(dy->data(), first.data(), first.size());
    kernel->set_weights(w2.data(), bias.data());  // a mutant delta: new weights and a bias
    kernel->forward(dx->data(), dy->data(), nullptr);
    b.download(dy->data(), second.data(), second.size());
    return std::make_pair(first, second);
  };
  const auto want = run(*reference_), got = run(*cuda_);
  for (size_t i = 0; i < want.first.size(); ++i) {
    ASSERT_NEAR(got.first[i], want.first[i], 1e-4f + 1e-4f * std::fabs(want.first[i])) << i;
    ASSERT_NEAR(got.second[i], want.second[i], 1e-4f + 1e-4f * std::fabs(want.second[i])) << i;
  }
}

TEST_F(CudaBackendTest, Conv2dErrorsAreVetoErrors) {
  const Conv2dOp op = conv_op(4, 4, 3, 3, 1, 1, 1, 1, 1, 1);
  std::unique_ptr<DeviceBuffer> x = cuda_->allocate(2 * 4 * 6 * 6), y = cuda_->allocate(2 * 4 * 6 * 6);
  std::unique_ptr<Conv2dKernel> kernel = cuda_->make_conv2d(op, Shape{2, 4, 6, 6}, ConvFusion{false, true});
  EXPECT_THROW(kernel->forward(x->data(), y->data(), nullptr), Error);  // before set_weights
  const std::vector<float> w(4 * 4 * 9, 0.5f);
  kernel->set_weights(w.data(), nullptr);
  EXPECT_THROW(kernel->forward(x->data(), y->data(), nullptr), Error);  // residual fusion without a residual
  EXPECT_THROW(cuda_->make_conv2d(op, Shape{2, 3, 6, 6}, ConvFusion{}), Error);  // wrong channel count
}

// --- data gradients and attribution kernels ------------------------------------------------

TEST_F(CudaBackendTest, CopyDeviceToDevice) {
  for (size_t n : {size_t(1), size_t(1000), size_t(3) << 20}) {
    const std::vector<float> values = random_values(n, 40);
    std::unique_ptr<DeviceBuffer> from = cuda_->allocate(n), to = cuda_->allocate(n + 2);
    const std::vector<float> fence(n + 2, -7.0f);
    cuda_->upload(values.data(), from->data(), n);
    cuda_->upload(fence.data(), to->data(), n + 2);
    cuda_->copy(from->data(), to->data() + 1, n);  // into the middle: the ends stay untouched
    std::vector<float> back(n + 2);
    cuda_->download(to->data(), back.data(), n + 2);
    EXPECT_EQ(back.front(), -7.0f);
    EXPECT_EQ(back.back(), -7.0f);
    ASSERT_EQ(std::vector<float>(back.begin() + 1, back.end() - 1), values);
  }
  EXPECT_NO_THROW(cuda_->copy(nullptr, nullptr, 0));
}

TEST_F(CudaBackendTest, ReluBackward) {
  const int64_t n = 100003;
  std::vector<float> y = random_values(n, 41);
  for (int64_t i = 0; i < n; i += 7) y[i] = 0.0f;  // the output of a ReLU: exact zeros block the gradient
  expect_backward_parity({y, random_values(n, 42)}, n, [&](Backend& b, const auto& in, float* dx, bool acc) {
    b.relu_backward_data(n, in[0], in[1], dx, acc);
  });
}

TEST_F(CudaBackendTest, AddBackward) {
  const int64_t n = 3 * 17 * 9 * 9;
  expect_backward_parity({random_values(n, 43)}, n, [&](Backend& b, const auto& in, float* dx, bool acc) {
    b.add_backward_data(n, in[0], dx, acc);
  });
}

TEST_F(CudaBackendTest, BatchNormBackward) {
  BatchNormOp op;
  op.channels = 17;
  op.eps = 1e-3f;
  const Shape s{3, 17, 9, 7};
  const int64_t c = op.channels;
  expect_backward_parity(
      {random_values(s.numel(), 44), random_values(c, 45), random_values(c, 46, 0.05f, 2.0f)}, s.numel(),
      [&](Backend& b, const auto& in, float* dx, bool acc) {
        b.batch_norm_backward_data(op, s, in[0], in[1], in[2], dx, acc);
      });
}

TEST_F(CudaBackendTest, ZeroPadShortcutBackward) {
  for (const ShortcutCase& k : kShortcutCases) {
    const ZeroPadShortcutOp op = k.op;
    const Shape out = infer_shape(op, {k.input}, "shortcut");
    expect_backward_parity({random_values(out.numel(), 47)}, k.input.numel(),
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.zero_pad_shortcut_backward_data(op, k.input, in[0], dx, acc);
                           });
  }
}

TEST_F(CudaBackendTest, GlobalAvgPoolBackward) {
  for (const Shape& s : {Shape{3, 64, 8, 8}, Shape{3, 7, 17, 17}, Shape{2, 5, 1, 1}, Shape{1, 3, 35, 35}})
    expect_backward_parity({random_values(s[0] * s[1], 48)}, s.numel(),
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.global_avg_pool_backward_data(s, in[0], dx, acc);
                           });
}

TEST_F(CudaBackendTest, AvgPoolBackward) {
  struct Case {
    Shape input;
    int64_t kh, kw, sh, sw, top, left, bottom, right;
  };
  for (const Case& k : {Case{Shape{3, 7, 8, 8}, 3, 3, 1, 1, 1, 1, 1, 1},  // Inception's branch pool
                        Case{Shape{3, 5, 7, 9}, 2, 2, 2, 2, 0, 0, 0, 0},  // stride 2, odd input
                        Case{Shape{2, 3, 6, 6}, 3, 3, 2, 2, 0, 0, 1, 1},  // asymmetric "same"
                        Case{Shape{3, 4, 17, 17}, 5, 5, 3, 3, 0, 0, 0, 0},
                        Case{Shape{2, 3, 7, 5}, 1, 1, 3, 2, 0, 0, 0, 0}})  // stride > kernel
    for (bool include_pad : {true, false}) {
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
      const Shape out = infer_shape(op, {k.input}, "pool");
      expect_backward_parity({random_values(out.numel(), 49)}, k.input.numel(),
                             [&](Backend& b, const auto& in, float* dx, bool acc) {
                               b.avg_pool_backward_data(op, k.input, in[0], dx, acc);
                             });
    }
}

TEST_F(CudaBackendTest, MaxPoolBackwardFirstMaximumWins) {
  struct Case {
    Shape input;
    MaxPoolOp op;
  };
  for (const Case& k : {Case{Shape{3, 7, 35, 35}, MaxPoolOp{3, 3, 2, 2, 0, 0, 0, 0}},  // InceptionV3
                        Case{Shape{2, 5, 8, 8}, MaxPoolOp{3, 3, 1, 1, 1, 1, 1, 1}},   // overlapping, padded
                        Case{Shape{2, 3, 7, 9}, MaxPoolOp{2, 2, 2, 2, 0, 0, 0, 0}},
                        Case{Shape{2, 3, 6, 6}, MaxPoolOp{3, 3, 2, 2, 0, 0, 1, 1}}})
    for (bool ties : {false, true}) {
      SCOPED_TRACE(ties ? "ties" : "distinct");
      const Shape out = infer_shape(k.op, {k.input}, "pool");
      std::vector<float> x = random_values(k.input.numel(), 50);
      if (ties)  // three levels: most windows have several maxima, only the first may win
        for (float& v : x) v = std::round(v);
      expect_backward_parity({x, random_values(out.numel(), 51)}, k.input.numel(),
                             [&](Backend& b, const auto& in, float* dx, bool acc) {
                               b.max_pool_backward_data(k.op, k.input, in[0], in[1], dx, acc);
                             });
    }
}

TEST_F(CudaBackendTest, ConcatBackwardChannelSlices) {
  const Shape whole{3, 8, 7, 7};
  const std::vector<float> dy = random_values(whole.numel(), 52);
  int64_t offset = 0;
  for (int64_t part_channels : {5, 2, 1}) {
    SCOPED_TRACE(testing::Message() << "part at channel " << offset);
    const Shape part{3, part_channels, 7, 7};
    expect_backward_parity({dy}, part.numel(), [&](Backend& b, const auto& in, float* dx, bool acc) {
      b.concat_backward_data(part, offset, whole[1], in[0], dx, acc);
    });
    offset += part_channels;
  }
}

TEST_F(CudaBackendTest, ChannelAffineBackward) {
  const Shape s{2, 3, 9, 11};
  const ChannelAffineOp op{{0.458f, 0.448f, 0.45f}, {-0.03f, -0.088f, -0.188f}};
  expect_backward_parity({random_values(s.numel(), 53)}, s.numel(),
                         [&](Backend& b, const auto& in, float* dx, bool acc) {
                           b.channel_affine_backward_data(op, s, in[0], dx, acc);
                         });
}

TEST_F(CudaBackendTest, ClipBackward) {
  const int64_t n = 100003;
  const ClipOp op{0, 6};
  // y: a real clip output (many cells exactly at a bound), from the reference (host memory).
  std::vector<float> y(n);
  const std::vector<float> x = random_values(n, 58, -8.0f, 8.0f);
  reference_->clip_forward(op, n, x.data(), y.data());
  expect_backward_parity({y, random_values(n, 59)}, n, [&](Backend& b, const auto& in, float* dx, bool acc) {
    b.clip_backward_data(op, n, in[0], in[1], dx, acc);
  });
}

TEST_F(CudaBackendTest, SliceBackward) {
  for (const SliceCase& k : kSliceCases) {
    const Shape out = infer_shape(k.op, {k.input}, "slice");
    expect_backward_parity({random_values(out.numel(), 66)}, k.input.numel(),
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.slice_backward_data(k.op, k.input, in[0], dx, acc);
                           });
  }
}

TEST_F(CudaBackendTest, PadBackward) {
  for (const PadCase& k : kPadCases) {
    const Shape out = infer_shape(k.op, {k.input}, "pad");
    expect_backward_parity({random_values(out.numel(), 67)}, k.input.numel(),
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.pad_backward_data(k.op, k.input, in[0], dx, acc);
                           });
  }
}

TEST_F(CudaBackendTest, DenseBackward) {
  struct Case {
    int64_t batch, in, out;
  };
  for (const Case& k : {Case{3, 64, 10}, Case{5, 2048, 1000}, Case{1, 7, 3}, Case{4, 3, 7}}) {
    SCOPED_TRACE(testing::Message() << "batch " << k.batch << " in " << k.in << " out " << k.out);
    DenseOp op;
    op.in_features = k.in;
    op.out_features = k.out;
    expect_backward_parity({random_values(k.batch * k.out, 54), random_values(k.out * k.in, 55)}, k.batch * k.in,
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.dense_backward_data(op, k.batch, in[0], in[1], dx, acc);
                           },
                           // The reference sums in sequence; its rounding grows with the sum's length.
                           5e-7f * static_cast<float>(k.out) + 1e-5f, 1e-4f);
  }
}

TEST_F(CudaBackendTest, SoftmaxBackward) {
  for (int64_t cols : {1, 10, 1000, 1001}) {
    SCOPED_TRACE(testing::Message() << "cols " << cols);
    const int64_t rows = 5;
    // y: a real softmax output (rows sum to 1), from the reference (a host backend: host memory).
    std::vector<float> y(rows * cols);
    const std::vector<float> logits = random_values(rows * cols, 56, -8.0f, 8.0f);
    reference_->softmax_forward(rows, cols, logits.data(), y.data());
    expect_backward_parity({y, random_values(rows * cols, 57)}, rows * cols,
                           [&](Backend& b, const auto& in, float* dx, bool acc) {
                             b.softmax_backward_data(rows, cols, in[0], in[1], dx, acc);
                           },
                           1e-6f, 1e-4f);
  }
}

TEST_F(CudaBackendTest, Conv2dBackwardModelShapes) {
  for (const ConvShapeCase& k : conv_model_shapes()) {
    SCOPED_TRACE(k.what);
    expect_conv_backward_parity(k.op, k.input, ConvFusion{});
  }
}

TEST_F(CudaBackendTest, Conv2dBackwardGroupedDepthwiseDilated) {
  for (const ConvShapeCase& k : conv_grouped_dilated_shapes()) {
    SCOPED_TRACE(k.what);
    expect_conv_backward_parity(k.op, k.input, ConvFusion{});
  }
}

// The data gradient is the convolution's alone: a kernel made with ReLU and residual fused
// gives the same one (the executor handles the epilogue's gradient).
TEST_F(CudaBackendTest, Conv2dBackwardIgnoresTheFusion) {
  expect_conv_backward_parity(conv_op(16, 16, 3, 3, 1, 1, 1, 1, 1, 1), Shape{3, 16, 8, 8}, ConvFusion{true, true});
  expect_conv_backward_parity(conv_op(5, 7, 3, 3, 2, 2, 0, 0, 1, 1), Shape{2, 5, 16, 16}, ConvFusion{true, false});
}

// Forward and backward interleaved on one kernel (they share the padded scratch buffer), and
// the gradient follows new weights.
TEST_F(CudaBackendTest, Conv2dBackwardAfterForwardAndNewWeights) {
  const Conv2dOp op = conv_op(4, 6, 3, 3, 2, 2, 0, 0, 1, 1);  // asymmetric: the scratch is used
  const Shape input{2, 4, 8, 8};
  const Shape out = infer_shape(op, {input}, "conv");
  const std::vector<float> x = random_values(input.numel(), 27), dy = random_values(out.numel(), 28),
                           w1 = random_values(6 * 4 * 9, 29), w2 = random_values(6 * 4 * 9, 30);
  auto run = [&](Backend& b) {
    std::unique_ptr<Conv2dKernel> kernel = b.make_conv2d(op, input, ConvFusion{});
    std::unique_ptr<DeviceBuffer> x_dev = b.allocate(x.size()), y_dev = b.allocate(out.numel()),
                                  dy_dev = b.allocate(dy.size()), dx_dev = b.allocate(x.size());
    b.upload(x.data(), x_dev->data(), x.size());
    b.upload(dy.data(), dy_dev->data(), dy.size());
    std::vector<float> forward(out.numel()), first(x.size()), second(x.size());
    kernel->set_weights(w1.data(), nullptr);
    kernel->forward(x_dev->data(), y_dev->data(), nullptr);
    kernel->backward_data(dy_dev->data(), dx_dev->data(), false);
    kernel->forward(x_dev->data(), y_dev->data(), nullptr);  // the forward after a backward is unchanged
    b.download(y_dev->data(), forward.data(), forward.size());
    b.download(dx_dev->data(), first.data(), first.size());
    kernel->set_weights(w2.data(), nullptr);
    kernel->backward_data(dy_dev->data(), dx_dev->data(), false);
    b.download(dx_dev->data(), second.data(), second.size());
    return std::make_tuple(forward, first, second);
  };
  const auto want = run(*reference_), got = run(*cuda_);
  auto expect_near = [](const std::vector<float>& g, const std::vector<float>& w, const char* what) {
    ASSERT_EQ(g.size(), w.size());
    for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-4f + 1e-4f * std::fabs(w[i])) << what << " " << i;
  };
  expect_near(std::get<0>(got), std::get<0>(want), "forward");
  expect_near(std::get<1>(got), std::get<1>(want), "gradient, first weights");
  expect_near(std::get<2>(got), std::get<2>(want), "gradient, second weights");
}

TEST_F(CudaBackendTest, Conv2dBackwardBeforeSetWeightsIsAnError) {
  const Conv2dOp op = conv_op(4, 4, 3, 3, 1, 1, 1, 1, 1, 1);
  std::unique_ptr<DeviceBuffer> dy = cuda_->allocate(2 * 4 * 6 * 6), dx = cuda_->allocate(2 * 4 * 6 * 6);
  std::unique_ptr<Conv2dKernel> kernel = cuda_->make_conv2d(op, Shape{2, 4, 6, 6}, ConvFusion{});
  EXPECT_THROW(kernel->backward_data(dy->data(), dx->data(), false), Error);
}

TEST_F(CudaBackendTest, Interpolate) {
  const int64_t n = 3 * 3 * 299 * 299;
  for (float alpha : {0.0f, 0.0125f, 0.5f, 1.0f})
    expect_parity({random_values(n, 60), random_values(n, 61)}, n,
                  [&](Backend& b, const auto& in, float* y) { b.interpolate(n, in[0], in[1], alpha, y); }, 1e-6f,
                  1e-6f);
}

// Both outputs in one buffer: sums (channels) then the map (channels x spatial), pre-filled
// (both accumulate). Without a map only the sums are passed.
TEST_F(CudaBackendTest, ConductanceAccumulate) {
  struct Case {
    int64_t channels, spatial;
  };
  for (const Case& k : {Case{16, 32 * 32}, Case{7, 17 * 17}, Case{768, 1}, Case{3, 35 * 35 * 3}})
    for (bool with_map : {true, false}) {
      SCOPED_TRACE(testing::Message() << "channels " << k.channels << " spatial " << k.spatial << " map "
                                      << with_map);
      const int64_t count = k.channels * k.spatial;
      const size_t out_count = static_cast<size_t>(k.channels + (with_map ? count : 0));
      expect_parity({random_values(count, 62), random_values(count, 63), random_values(count, 64)}, out_count,
                    [&](Backend& b, const auto& in, float* out) {
                      b.conductance_accumulate(k.channels, k.spatial,
                                               {{in[0], in[1], in[2], out, with_map ? out + k.channels : nullptr}});
                    },
                    // The sums: over up to 3,675 terms, in double on both backends.
                    1e-5f, 1e-5f, random_values(out_count, 65));
    }
}

// One launch for a pass's intervals: terms of three "images" interleaved (grouped on the
// device by their sums, each group in order), with and without maps, against the reference
// backend applying them one by one.
TEST_F(CudaBackendTest, ConductanceAccumulateManyTermsInOneCall) {
  const int64_t channels = 7, spatial = 17 * 17, sample = channels * spatial, images = 3, steps = 4;
  // Inputs: `steps` activations and gradients per image; outputs: sums then maps per image.
  const size_t out_count = static_cast<size_t>(images * (channels + sample));
  expect_parity({random_values(static_cast<size_t>(images * steps * sample), 80),
                 random_values(static_cast<size_t>(images * steps * sample), 81)},
                out_count,
                [&](Backend& b, const auto& in, float* out) {
                  std::vector<ConductanceTerm> terms;
                  for (int64_t s = 1; s < steps; ++s)
                    for (int64_t i = 0; i < images; ++i) {
                      const int64_t upper = (i * steps + s - 1) * sample, lower = (i * steps + s) * sample;
                      float* sums = out + i * channels;
                      float* map = i == 1 ? nullptr : out + images * channels + i * sample;
                      terms.push_back({in[1] + lower, in[0] + upper, in[0] + lower, sums, map});
                    }
                  b.conductance_accumulate(channels, spatial, terms);
                },
                1e-5f, 1e-5f, random_values(out_count, 82));
}

// Mutant evaluation on the device: the incremental plan's logits for each mutant against a
// full CPU forward of the mutated model, and the parameters restored afterwards.
TEST_F(CudaBackendTest, IncrementalPlanMutantsMatchCpu) {
  Model m = load_model(std::string(VETO_REPO_DIR) + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(std::string(VETO_REPO_DIR) + "/data/cifar10_test_0-999.bin", m.preprocess, 16);
  std::vector<float> x(static_cast<size_t>(16 * data->sample_size()));
  data->load_batch(0, 16, x.data());
  auto cpu = make_backend("cpu");
  const std::vector<float> before(m.params.data(), m.params.data() + m.params.size());
  PlanOptions incremental;
  incremental.incremental = true;
  Plan device(m, *cuda_, 16, incremental);
  device.forward(x.data());
  const MutantGenerator gen(m, MutationOperator::NAI, 0.02, 5);
  // Twice over: the second round replays the recordings (CUDA Graphs) of the first.
  for (int64_t round = 0; round < 8; ++round) {
    const int64_t k = round % 4;
    const WeightDelta d = resolve_mutant(m, gen.draw(k));
    Tensor got, want;
    {
      const ScopedDelta applied(m.params, d);
      refresh_changed_filters(device, d);
      device.forward_changed(d.convs);
      got = device.logits();
      Plan host(m, *cpu, 16);
      host.forward(x.data());
      want = host.logits();
    }
    refresh_changed_filters(device, d);
    for (int64_t i = 0; i < got.numel(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-3f + 1e-3f * std::fabs(want[i])) << "mutant " << k << " logit " << i;
  }
  EXPECT_EQ(std::vector<float>(m.params.data(), m.params.data() + m.params.size()), before);
}


// --- precision modes, recording (CUDA Graphs), pinned dataset runs ----------------------------

std::vector<float> bf16_rounded(std::vector<float> v) {
  for (float& e : v) e = cuda_math::float_of_bf16_bits(cuda_math::bf16_bits_of(e));
  return v;
}

float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float e : v) m = std::max(m, std::fabs(e));
  return m;
}

// |got - want| <= tolerance x max|want| everywhere (reduced precision errors scale with the
// output's magnitude, not each element's).
void expect_close_to_scale(const std::vector<float>& got, const std::vector<float>& want, float tolerance) {
  ASSERT_EQ(got.size(), want.size());
  const float bound = tolerance * max_abs(want);
  ASSERT_GT(bound, 0.0f);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "index " << i;
    ASSERT_NEAR(got[i], want[i], bound) << "index " << i;
  }
}

// A convolution (bias, residual and ReLU fused) and its accumulating data gradient in tf32 or
// bf16 against the reference on what the tensor cores see: for bf16 the input, the weights and
// dy rounded to bfloat16 (tf32 rounds inside cuDNN; its tolerance covers it). The remaining
// differences are the rounding of the bf16 result and the summation order.
void expect_conv_precision_parity(Backend& device, Backend& reference, Precision precision, const Conv2dOp& op,
                                  const Shape& input) {
  const Shape out = infer_shape(op, {input}, "conv");
  const bool bf16 = precision == Precision::BF16;
  const std::vector<float> x = random_values(input.numel(), 40), weight = random_values(conv_weight_count(op), 41),
                           bias = random_values(op.out_channels, 42), residual = random_values(out.numel(), 43),
                           dy = random_values(out.numel(), 44), dx_start = random_values(input.numel(), 45);
  const ConvFusion fusion{true, true};
  auto forward = [&](Backend& b, const std::vector<float>& xv, const std::vector<float>& wv) {
    return run_op(b, {xv, residual}, out.numel(), [&](Backend& bb, const auto& in, float* y) {
      std::unique_ptr<Conv2dKernel> kernel = bb.make_conv2d(op, input, fusion);
      kernel->set_weights(wv.data(), bias.data());
      kernel->forward(in[0], y, in[1]);
      bb.synchronize();
    });
  };
  auto backward = [&](Backend& b, const std::vector<float>& dyv, const std::vector<float>& wv) {
    return run_op(
        b, {dyv}, input.numel(),
        [&](Backend& bb, const auto& in, float* dx) {
          std::unique_ptr<Conv2dKernel> kernel = bb.make_conv2d(op, input, fusion);
          kernel->set_weights(wv.data(), bias.data());
          kernel->backward_data(in[0], dx, true);
          bb.synchronize();
        },
        dx_start);
  };
  const float tolerance = bf16 ? 1e-2f : 4e-3f;
  const std::vector<float> seen_x = bf16 ? bf16_rounded(x) : x, seen_w = bf16 ? bf16_rounded(weight) : weight,
                           seen_dy = bf16 ? bf16_rounded(dy) : dy;
  {
    SCOPED_TRACE("forward");
    expect_close_to_scale(forward(device, x, weight), forward(reference, seen_x, seen_w), tolerance);
  }
  {
    SCOPED_TRACE("backward_data");
    expect_close_to_scale(backward(device, dy, weight), backward(reference, seen_dy, seen_w), tolerance);
  }
}

class CudaPrecisionTest : public CudaBackendTest, public ::testing::WithParamInterface<Precision> {
 protected:
  void SetUp() override {
    CudaBackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    try {
      device_ = make_backend("cuda", GetParam());
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find("compute capability") != std::string::npos) GTEST_SKIP() << what;
      FAIL() << what;
    }
  }
  std::unique_ptr<Backend> device_;
};

TEST_P(CudaPrecisionTest, NameSaysThePrecision) {
  EXPECT_EQ(device_->name(), std::string("cuda ") + precision_name(GetParam()));
}

TEST_P(CudaPrecisionTest, Conv2dModelAndGroupedShapes) {
  std::vector<ConvShapeCase> cases = conv_model_shapes();
  for (const ConvShapeCase& k : conv_grouped_dilated_shapes()) cases.push_back(k);
  for (const ConvShapeCase& k : cases) {
    SCOPED_TRACE(k.what);
    expect_conv_precision_parity(*device_, *reference_, GetParam(), k.op, k.input);
  }
}

TEST_P(CudaPrecisionTest, Dense) {
  DenseOp op;
  op.in_features = 96;
  op.out_features = 10;
  op.has_bias = true;
  const int64_t batch = 5;
  const std::vector<float> x = random_values(batch * op.in_features, 50),
                           w = random_values(op.out_features * op.in_features, 51), b = random_values(10, 52),
                           dy = random_values(batch * op.out_features, 53);
  const bool bf16 = GetParam() == Precision::BF16;
  auto forward = [&](Backend& backend, const std::vector<float>& xv, const std::vector<float>& wv) {
    return run_op(backend, {xv, wv, b}, static_cast<size_t>(batch * op.out_features),
                  [&](Backend& bb, const auto& in, float* y) { bb.dense_forward(op, batch, in[0], in[1], in[2], y); });
  };
  auto backward = [&](Backend& backend, const std::vector<float>& dyv, const std::vector<float>& wv) {
    return run_op(backend, {dyv, wv}, static_cast<size_t>(batch * op.in_features),
                  [&](Backend& bb, const auto& in, float* dx) {
                    bb.dense_backward_data(op, batch, in[0], in[1], dx, false);
                  });
  };
  const float tolerance = bf16 ? 1e-2f : 4e-3f;
  auto seen = [bf16](const std::vector<float>& v) { return bf16 ? bf16_rounded(v) : v; };
  expect_close_to_scale(forward(*device_, x, w), forward(*reference_, seen(x), seen(w)), tolerance);
  expect_close_to_scale(backward(*device_, dy, w), backward(*reference_, seen(dy), seen(w)), tolerance);
}

// The whole ResNet-20 on real CIFAR-10 records against the CPU's FP32: reduced precision moves
// the logits a little and flips at most a few near-tie predictions.
TEST_P(CudaPrecisionTest, Resnet20AgreesWithFp32) {
  const Model m = load_model(std::string(VETO_REPO_DIR) + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(std::string(VETO_REPO_DIR) + "/data/cifar10_test_0-999.bin", m.preprocess, 128);
  auto cpu = make_backend("cpu");
  const InferenceResult got = run_inference(m, *device_, *data, 64), want = run_inference(m, *cpu, *data, 64);
  int agree = 0;
  for (size_t i = 0; i < got.predictions.size(); ++i) agree += got.predictions[i] == want.predictions[i];
  EXPECT_GE(agree, GetParam() == Precision::BF16 ? 122 : 126) << "of 128";
  expect_close_to_scale(got.logits.values(), want.logits.values(), GetParam() == Precision::BF16 ? 0.08f : 0.02f);
}

// set_filters on the device (conv2d_set_filters.cu): patching two filters gives, bit for bit,
// what set_weights with the patched weights gives, and patching the old ones back restores
// the original output.
void expect_set_filters_equals_set_weights(Backend& device) {
  const Conv2dOp op = grouped(conv_op(8, 12, 3, 3, 1, 1, 1, 1, 1, 1), 2);
  const Shape input{2, 8, 9, 9};
  const Shape out = infer_shape(op, {input}, "conv");
  const int64_t size = static_cast<int64_t>(conv_weight_count(op)) / op.out_channels;
  const std::vector<float> x = random_values(input.numel(), 70), w = random_values(conv_weight_count(op), 71),
                           bias = random_values(op.out_channels, 72), fresh = random_values(2 * size, 73);
  const std::vector<int64_t> filters{7, 2};
  const FilterPatch patch = patch_filters(w, size, filters, fresh);
  std::unique_ptr<Conv2dKernel> sparse = device.make_conv2d(op, input, ConvFusion{}),
                                whole = device.make_conv2d(op, input, ConvFusion{});
  auto run = [&](Conv2dKernel& k) {
    return run_op(device, {x}, static_cast<size_t>(out.numel()), [&](Backend& b, const auto& in, float* y) {
      k.forward(in[0], y, nullptr);
      b.synchronize();
    });
  };
  sparse->set_weights(w.data(), bias.data());
  const std::vector<float> original = run(*sparse);
  sparse->set_filters(filters, fresh.data());
  whole->set_weights(patch.patched.data(), bias.data());
  const std::vector<float> changed = run(*sparse);
  EXPECT_EQ(changed, run(*whole));
  EXPECT_NE(changed, original);
  sparse->set_filters(filters, patch.old_values.data());
  EXPECT_EQ(run(*sparse), original);
}

TEST_F(CudaBackendTest, Conv2dSetFiltersEqualsSetWeightsOfThePatchedWeights) {
  expect_set_filters_equals_set_weights(*cuda_);
}

TEST_P(CudaPrecisionTest, Conv2dSetFiltersEqualsSetWeightsOfThePatchedWeights) {
  expect_set_filters_equals_set_weights(*device_);
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaPrecisionTest, ::testing::Values(Precision::TF32, Precision::BF16),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

// A plan replays its CUDA Graphs after the first run: each replay must read the current input
// (and weights), give what a plan issuing every call gives, and survive the workspace moving
// under it (a bigger plan in between may grow the shared workspace: the graph is recorded again).
TEST_F(CudaBackendTest, RecordedPlansReplayNewInputsAndSurviveAWorkspaceMove) {
  const Model m = load_model(std::string(VETO_REPO_DIR) + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(std::string(VETO_REPO_DIR) + "/data/cifar10_test_0-999.bin", m.preprocess, 8);
  std::vector<float> x(static_cast<size_t>(8 * data->sample_size()));
  data->load_batch(0, 8, x.data());
  PlanOptions recorded, direct;
  recorded.gradients = direct.gradients = {"layer2.1"};
  direct.record = false;
  Plan replaying(m, *cuda_, 4, recorded), issuing(m, *cuda_, 4, direct);
  const std::vector<float> seed = random_values(40, 60);
  const float* inputs[] = {x.data(), x.data() + 4 * data->sample_size(), x.data(), x.data() + 4 * data->sample_size()};
  std::vector<std::vector<float>> logits;
  for (int pass = 0; pass < 4; ++pass) {
    SCOPED_TRACE(testing::Message() << "pass " << pass);
    if (pass == 3) {
      // Much larger activations: the convolutions may need a larger workspace.
      Plan big(m, *cuda_, 512);
      std::vector<float> noise = random_values(static_cast<size_t>(512 * data->sample_size()), 61);
      big.forward(noise.data());
      cuda_->synchronize();
    }
    replaying.forward(inputs[pass]);
    issuing.forward(inputs[pass]);
    replaying.backward_data(seed.data());
    issuing.backward_data(seed.data());
    const Tensor got = replaying.logits(), want = issuing.logits();
    EXPECT_EQ(got.values(), want.values());
    Tensor g1(replaying.shape("layer2.1")), g2(issuing.shape("layer2.1"));
    cuda_->download(replaying.gradient("layer2.1"), g1.data(), static_cast<size_t>(g1.numel()));
    cuda_->download(issuing.gradient("layer2.1"), g2.data(), static_cast<size_t>(g2.numel()));
    EXPECT_EQ(g1.values(), g2.values());
    logits.push_back(got.values());
  }
  EXPECT_NE(logits[0], logits[1]);
  EXPECT_EQ(logits[0], logits[2]);
  EXPECT_EQ(logits[1], logits[3]);
}

// Dataset inference stages batches through two pinned buffers while the device computes: the
// same logits as the CPU, including the last partial batch (its own plan).
TEST_F(CudaBackendTest, DatasetInferenceWithPinnedStagingMatchesCpu) {
  const Model m = load_model(std::string(VETO_REPO_DIR) + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(std::string(VETO_REPO_DIR) + "/data/cifar10_test_0-999.bin", m.preprocess, 300);
  auto cpu = make_backend("cpu");
  const InferenceResult got = run_inference(m, *cuda_, *data, 128), want = run_inference(m, *cpu, *data, 128);
  ASSERT_EQ(got.logits.shape(), want.logits.shape());
  for (int64_t i = 0; i < got.logits.numel(); ++i)
    ASSERT_NEAR(got.logits[i], want.logits[i], 1e-3f + 1e-3f * std::fabs(want.logits[i])) << "logit " << i;
}

}  // namespace
}  // namespace veto
