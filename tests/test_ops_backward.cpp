// Every fast CPU backward_data kernel (kernels/cpu) against its reference on shapes from the
// real models (ResNet-20 CIFAR stages, InceptionV3's 35x35 / 17x17 / 8x8 blocks, odd
// channels, batch > 1), each twice: overwriting a dx pre-filled with NaN (every element
// must be written) and accumulating onto a dx pre-filled with known values. Then both host
// backends through the Backend interface: the CPU backend's wiring against the reference
// backend, and the reference backend's accumulate path (its `into` helper) against its own
// overwrite path. conv2d's kernel has its tests in test_conv2d.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/reference/add.h"
#include "kernels/reference/avg_pool.h"
#include "kernels/reference/batch_norm.h"
#include "kernels/reference/channel_affine.h"
#include "kernels/reference/clip.h"
#include "kernels/reference/concat.h"
#include "kernels/reference/conductance.h"
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

constexpr int64_t kGuard = 16;  // sentinel floats after dx: the kernel must not write there
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random(int64_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  fill_uniform(v, seed, lo, hi);
  return v;
}

// Calls the kernel under test on dx with the given accumulate flag.
using Kernel = std::function<void(float* dx, bool accumulate)>;

// Runs `fast` into `prefill` + guard sentinels and returns dx, checking the guards.
std::vector<float> run(const Kernel& fast, const std::vector<float>& prefill, bool accumulate, const std::string& what) {
  const size_t n = prefill.size();
  std::vector<float> dx = prefill;
  dx.resize(n + kGuard, kNaN);
  fast(dx.data(), accumulate);
  for (size_t i = n; i < n + kGuard; ++i) EXPECT_TRUE(std::isnan(dx[i])) << what << ": wrote past dx";
  dx.resize(n);
  return dx;
}

// The fast kernel overwriting NaN must give `want`; accumulating onto known values must give
// those values + `want`.
void check_backward(const std::string& what, const std::vector<float>& want, const Kernel& fast, float rtol,
                    float atol, uint32_t seed) {
  const int64_t n = static_cast<int64_t>(want.size());
  const auto overwritten = run(fast, std::vector<float>(want.size(), kNaN), false, what);
  expect_close(overwritten.data(), want.data(), n, rtol, atol, what + " overwrite");
  const auto prefill = random(n, seed, -2, 2);
  std::vector<float> want_sum(want.size());
  for (size_t i = 0; i < want.size(); ++i) want_sum[i] = prefill[i] + want[i];
  const auto accumulated = run(fast, prefill, true, what);
  // The compiler may contract dx += dy * s into one fused multiply-add (one rounding where
  // the reference's separate add has two): allow a rounding at the prefill's magnitude.
  expect_close(accumulated.data(), want_sum.data(), n, rtol, std::max(atol, 3e-7f), what + " accumulate");
}

TEST(BatchNormBackward, CpuMatchesReference) {
  for (const Shape& s : {Shape{3, 16, 32, 32}, Shape{3, 64, 8, 8}, Shape{2, 35, 17, 17}, Shape{2, 768, 17, 17}}) {
    const int64_t c = s[1], sp = s[2] * s[3];
    const auto dy = random(s.numel(), 1), g = random(c, 2, 0.5f, 1.5f), v = random(c, 3, 0.1f, 2.0f);
    std::vector<float> want(dy.size());
    reference::batch_norm_backward_data(s[0], c, sp, dy.data(), g.data(), v.data(), 1e-3f, want.data());
    check_backward("batch_norm " + s.str(), want, [&](float* dx, bool acc) {
      cpu::batch_norm_backward_data(s[0], c, sp, dy.data(), g.data(), v.data(), 1e-3f, dx, acc);
    }, 1e-6f, 1e-7f, 4);
  }
}

TEST(ReluBackward, CpuMatchesReferenceIncludingZeros) {
  for (int64_t n : {int64_t{3 * 16 * 32 * 32 + 5}, int64_t{2 * 288 * 35 * 35}}) {
    auto y = random(n, 5, -1, 1);
    for (int64_t i = 0; i < n; i += 7) y[i] = 0.0f;  // ReLU outputs are often exactly 0: gradient 0
    for (float& v : y) v = v < 0 ? 0.0f : v;
    const auto dy = random(n, 6);
    std::vector<float> want(y.size());
    reference::relu_backward_data(n, y.data(), dy.data(), want.data());
    check_backward("relu " + std::to_string(n), want,
                   [&](float* dx, bool acc) { cpu::relu_backward_data(n, y.data(), dy.data(), dx, acc); }, 0, 0, 7);
  }
}

TEST(AddBackward, CpuMatchesReference) {
  const int64_t n = 3 * 32 * 16 * 16 + 3;
  const auto dy = random(n, 8);
  std::vector<float> want(dy.size());
  reference::add_backward_data(n, dy.data(), want.data());
  check_backward("add", want, [&](float* dx, bool acc) { cpu::add_backward_data(n, dy.data(), dx, acc); }, 0, 0, 9);
}

TEST(ZeroPadShortcutBackward, CpuMatchesReferenceOnResnetStages) {
  for (const Shape& s : {Shape{3, 16, 32, 32}, Shape{3, 32, 16, 16}, Shape{2, 5, 7, 9}}) {
    const ZeroPadShortcutOp op{2, s[1] / 2, s[1] / 2 + 1};
    const Shape out = infer_shape(op, {s}, "shortcut");
    const auto dy = random(out.numel(), 10);
    std::vector<float> want(static_cast<size_t>(s.numel()));
    reference::zero_pad_shortcut_backward_data(op, s[0], s[1], s[2], s[3], dy.data(), want.data());
    check_backward("zero_pad_shortcut " + s.str(), want, [&](float* dx, bool acc) {
      cpu::zero_pad_shortcut_backward_data(op, s[0], s[1], s[2], s[3], dy.data(), dx, acc);
    }, 0, 0, 11);
  }
}

TEST(GlobalAvgPoolBackward, CpuMatchesReference) {
  for (const Shape& s : {Shape{3, 64, 8, 8}, Shape{2, 2048, 8, 8}, Shape{2, 5, 7, 3}}) {
    const auto dy = random(s[0] * s[1], 12);
    std::vector<float> want(static_cast<size_t>(s.numel()));
    reference::global_avg_pool_backward_data(s[0], s[1], s[2] * s[3], dy.data(), want.data());
    check_backward("global_avg_pool " + s.str(), want, [&](float* dx, bool acc) {
      cpu::global_avg_pool_backward_data(s[0], s[1], s[2] * s[3], dy.data(), dx, acc);
    }, 1e-6f, 1e-7f, 13);
  }
}

TEST(AvgPoolBackward, CpuMatchesReferenceBothPaddingSemantics) {
  struct Case {
    Shape in;
    AvgPoolOp op;
  };
  const std::vector<Case> cases{
      {{3, 64, 8, 8}, {8, 8, 8, 8, 0, 0, 0, 0, true}},      // Keras ResNet20v1 head
      {{2, 288, 35, 35}, {3, 3, 1, 1, 1, 1, 1, 1, true}},   // torchvision Inception branch pool
      {{2, 288, 35, 35}, {3, 3, 1, 1, 1, 1, 1, 1, false}},  // Keras Inception branch pool
      {{2, 768, 17, 17}, {3, 3, 1, 1, 1, 1, 1, 1, false}},
      {{2, 7, 17, 13}, {3, 3, 2, 2, 0, 0, 0, 0, true}},     // odd sizes, stride 2, valid
      {{2, 7, 16, 13}, {3, 3, 2, 2, 0, 1, 1, 0, false}},    // asymmetric padding
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pool");
    const auto dy = random(out.numel(), 14);
    std::vector<float> want(static_cast<size_t>(c.in.numel()));
    reference::avg_pool_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), out[2], out[3],
                                      want.data());
    // Accumulating adds each window's share onto dx in turn rather than the finished sum:
    // a float rounding or two.
    check_backward("avg_pool " + c.in.str() + (c.op.count_include_pad ? " incl" : " excl"), want,
                   [&](float* dx, bool acc) {
                     cpu::avg_pool_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), out[2],
                                                 out[3], dx, acc);
                   },
                   1e-6f, 1e-6f, 15);
  }
}

TEST(DenseBackward, CpuMatchesReference) {
  for (auto [batch, in, out] : {std::tuple<int64_t, int64_t, int64_t>{3, 64, 10}, {2, 2048, 1000}, {1, 2048, 1000},
                                {5, 7, 3}, {4, 130, 17}}) {
    const auto dy = random(batch * out, 16), w = random(out * in, 17);
    std::vector<float> want(static_cast<size_t>(batch * in));
    reference::dense_backward_data(batch, in, out, dy.data(), w.data(), want.data());
    const float atol = 1e-6f * static_cast<float>(out);  // long dot products, as in the forward test
    check_backward("dense " + std::to_string(batch) + "x" + std::to_string(in) + "x" + std::to_string(out), want,
                   [&](float* dx, bool acc) { cpu::dense_backward_data(batch, in, out, dy.data(), w.data(), dx, acc); },
                   1e-5f, atol, 18);
  }
}

TEST(SoftmaxBackward, CpuMatchesReference) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 10}, {3, 1000}, {1, 1001}}) {
    const auto x = random(rows * cols, 19, -5, 5), dy = random(rows * cols, 20);
    std::vector<float> y(x.size()), want(x.size());
    reference::softmax_forward(rows, cols, x.data(), y.data());
    reference::softmax_backward_data(rows, cols, y.data(), dy.data(), want.data());
    check_backward("softmax " + std::to_string(rows) + "x" + std::to_string(cols), want,
                   [&](float* dx, bool acc) { cpu::softmax_backward_data(rows, cols, y.data(), dy.data(), dx, acc); },
                   1e-5f, 1e-7f, 21);
  }
}

TEST(MaxPoolBackward, CpuMatchesReferenceOnInceptionShapesAndTies) {
  struct Case {
    Shape in;
    MaxPoolOp op;
  };
  const std::vector<Case> cases{
      {{2, 64, 147, 147}, {3, 3, 2, 2, 0, 0, 0, 0}},  // InceptionV3 maxpool1
      {{2, 288, 35, 35}, {3, 3, 2, 2, 0, 0, 0, 0}},   // mixed3 branch pool
      {{2, 768, 17, 17}, {3, 3, 2, 2, 0, 0, 0, 0}},   // mixed8 branch pool
      {{3, 5, 8, 9}, {3, 3, 1, 1, 1, 1, 1, 1}},       // padded, odd sizes, overlapping windows
      {{2, 3, 9, 8}, {2, 2, 2, 2, 0, 0, 1, 0}},       // asymmetric padding
  };
  for (const Case& c : cases)
    for (bool ties : {false, true}) {
      const Shape out = infer_shape(c.op, {c.in}, "pool");
      auto x = random(c.in.numel(), 22, -3, -1);  // all negative: padding must never win
      // Quantized to 3 levels: windows full of equal maxima, where only the first may win.
      if (ties)
        for (float& v : x) v = std::round(v);
      const auto dy = random(out.numel(), 23);
      std::vector<float> want(static_cast<size_t>(c.in.numel()));
      reference::max_pool_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), dy.data(), out[2],
                                        out[3], want.data());
      check_backward("max_pool " + c.in.str() + (ties ? " ties" : ""), want,
                     [&](float* dx, bool acc) {
                       cpu::max_pool_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], x.data(), dy.data(),
                                                   out[2], out[3], dx, acc);
                     },
                     1e-6f, 1e-6f, 24);
    }
}

TEST(ConcatBackward, CpuMatchesReferenceForEveryPart) {
  const Shape a{2, 64, 35, 35}, b{2, 96, 35, 35}, c{2, 35, 35, 35};  // odd last part
  const int64_t total = 64 + 96 + 35;
  const auto dy = random(2 * total * 35 * 35, 25);
  int64_t offset = 0;
  for (const Shape& s : {a, b, c}) {
    std::vector<float> want(static_cast<size_t>(s.numel()));
    reference::concat_backward_data(s[0], s[1], s[2] * s[3], offset, total, dy.data(), want.data());
    check_backward("concat part at " + std::to_string(offset), want, [&](float* dx, bool acc) {
      cpu::concat_backward_data(s[0], s[1], s[2] * s[3], offset, total, dy.data(), dx, acc);
    }, 0, 0, 26);
    offset += s[1];
  }
}

TEST(ChannelAffineBackward, CpuMatchesReference) {
  const Shape s{3, 3, 299, 299};
  const std::vector<float> scale{0.458f, 0.448f, 0.45f};
  const auto dy = random(s.numel(), 27);
  std::vector<float> want(dy.size());
  reference::channel_affine_backward_data(s[0], s[1], s[2] * s[3], dy.data(), scale.data(), want.data());
  check_backward("channel_affine", want, [&](float* dx, bool acc) {
    cpu::channel_affine_backward_data(s[0], s[1], s[2] * s[3], dy.data(), scale.data(), dx, acc);
  }, 0, 0, 28);
}

TEST(ClipBackward, CpuMatchesReferenceIncludingTheBounds) {
  const int64_t n = 3 * 32 * 112 * 112 + 5;
  const auto x = random(n, 29, -8, 8), dy = random(n, 30);
  for (const ClipOp& op : {ClipOp{0, 6}, ClipOp{-1, 1}}) {
    std::vector<float> y(x.size()), want(x.size());
    reference::clip_forward(op, n, x.data(), y.data());  // many outputs exactly at a bound: gradient 0
    reference::clip_backward_data(op, n, y.data(), dy.data(), want.data());
    check_backward("clip", want,
                   [&](float* dx, bool acc) { cpu::clip_backward_data(op, n, y.data(), dy.data(), dx, acc); }, 0, 0,
                   31);
  }
}

TEST(SliceBackward, CpuMatchesReference) {
  struct Case {
    Shape in;
    SliceOp op;
  };
  const std::vector<Case> cases{
      {{2, 16, 32, 32}, {{0, 0, 0}, {1, 2, 2}, {16, 16, 16}}},  // x[:, :, ::2, ::2]
      {{2, 16, 32, 32}, {{0, 1, 1}, {1, 2, 2}, {16, 16, 16}}},  // its odd phase
      {{3, 24, 17, 17}, {{8, 0, 0}, {1, 1, 1}, {12, 17, 17}}},  // a channel split
      {{2, 7, 13, 11}, {{1, 2, 3}, {2, 3, 1}, {3, 4, 5}}},      // a crop: unit step along W between zeros
      {{2, 7, 13, 11}, {{0, 0, 0}, {3, 5, 4}, {3, 3, 3}}},      // sparse along every axis
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "slice");
    const auto dy = random(out.numel(), 32);
    std::vector<float> want(static_cast<size_t>(c.in.numel()));
    reference::slice_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), want.data());
    check_backward("slice " + c.in.str(), want, [&](float* dx, bool acc) {
      cpu::slice_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), dx, acc);
    }, 0, 0, 33);
  }
}

TEST(PadBackward, CpuMatchesReference) {
  struct Case {
    Shape in;
    PadOp op;
  };
  const std::vector<Case> cases{
      {{2, 3, 224, 224}, {{0, 0, 0}, {0, 1, 1}, 0.0f}},  // TensorFlow "same", stride 2
      {{2, 32, 17, 17}, {{0, 1, 1}, {0, 1, 1}, 0.0f}},
      {{2, 5, 7, 9}, {{2, 0, 3}, {1, 2, 0}, -0.5f}},
  };
  for (const Case& c : cases) {
    const Shape out = infer_shape(c.op, {c.in}, "pad");
    const auto dy = random(out.numel(), 34);
    std::vector<float> want(static_cast<size_t>(c.in.numel()));
    reference::pad_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), want.data());
    check_backward("pad " + c.in.str(), want, [&](float* dx, bool acc) {
      cpu::pad_backward_data(c.op, c.in[0], c.in[1], c.in[2], c.in[3], dy.data(), dx, acc);
    }, 0, 0, 35);
  }
}

TEST(Attribution, CpuInterpolateMatchesReference) {
  const int64_t n = 3 * 3 * 299 * 299 + 1;
  const auto baseline = random(n, 29), x = random(n, 30);
  for (float alpha : {0.0f, 0.3f, 1.0f}) {
    std::vector<float> want(x.size()), got(x.size(), kNaN);
    reference::interpolate(n, baseline.data(), x.data(), alpha, want.data());
    cpu::interpolate(n, baseline.data(), x.data(), alpha, got.data());
    expect_close(got.data(), want.data(), n, 1e-6f, 1e-7f, "interpolate alpha " + std::to_string(alpha));
  }
}

TEST(Attribution, CpuConductanceAccumulateMatchesReference) {
  for (auto [channels, spatial] : {std::pair<int64_t, int64_t>{288, 35 * 35}, {64, 8 * 8}, {2048, 1}, {3, 1001}}) {
    const int64_t n = channels * spatial;
    const auto grad = random(n, 31), upper = random(n, 32), lower = random(n, 33);
    const auto sums0 = random(channels, 34), map0 = random(n, 35);
    for (bool with_map : {false, true}) {
      auto want_sums = sums0, got_sums = sums0, want_map = map0, got_map = map0;
      // Two intervals: the second adds onto the first.
      for (int step = 0; step < 2; ++step) {
        reference::conductance_accumulate(channels, spatial, grad.data(), upper.data(), lower.data(),
                                          want_sums.data(), with_map ? want_map.data() : nullptr);
        cpu::conductance_accumulate(channels, spatial, grad.data(), upper.data(), lower.data(), got_sums.data(),
                                    with_map ? got_map.data() : nullptr);
      }
      const std::string what = "conductance " + std::to_string(channels) + "x" + std::to_string(spatial);
      expect_close(got_sums.data(), want_sums.data(), channels, 1e-6f, 1e-6f, what + " sums");
      expect_close(got_map.data(), want_map.data(), n, 0, 0, what + (with_map ? " map" : " map untouched"));
      if (!with_map) {
        EXPECT_EQ(got_map, map0) << what;
      }
    }
  }
  // The channel sum is formed in double, as in the reference: four terms of 2^-25 after a 1
  // would each vanish in a float sum (below half an ulp of 1) but together make 2^-23.
  const std::vector<float> g(5, 1.0f), u{1, 0x1p-25f, 0x1p-25f, 0x1p-25f, 0x1p-25f}, l(5, 0.0f);
  std::vector<float> sums{0};
  cpu::conductance_accumulate(1, 5, g.data(), u.data(), l.data(), sums.data(), nullptr);
  EXPECT_EQ(sums[0], 1.0f + 0x1p-23f);
}

// --- both host backends through the Backend interface -----------------------------------

// One backward method of the interface, on dx.
using Call = std::function<void(Backend&, float* dx, bool accumulate)>;

struct BackendCase {
  std::string name;
  int64_t dx_count;
  Call call;
};

// Tensors shared by the cases (host memory: both host backends take host pointers).
struct Inputs {
  std::vector<float> dy = random(1 << 20, 40), y = random(1 << 20, 41, -0.5f, 1), x = random(1 << 20, 42);
  std::vector<float> weight = random(1 << 16, 43, 0.5f, 1.5f), var = random(1 << 16, 44, 0.1f, 2);
};

std::vector<BackendCase> backend_cases(const Inputs& in) {
  std::vector<BackendCase> cases;
  const Shape s{2, 35, 17, 17};
  cases.push_back({"batch_norm", s.numel(), [&in, s](Backend& b, float* dx, bool acc) {
                     BatchNormOp op;
                     op.channels = s[1];
                     op.eps = 1e-3f;
                     b.batch_norm_backward_data(op, s, in.dy.data(), in.weight.data(), in.var.data(), dx, acc);
                   }});
  cases.push_back({"relu", 1001, [&in](Backend& b, float* dx, bool acc) {
                     b.relu_backward_data(1001, in.y.data(), in.dy.data(), dx, acc);
                   }});
  cases.push_back({"add", 1001, [&in](Backend& b, float* dx, bool acc) { b.add_backward_data(1001, in.dy.data(), dx, acc); }});
  const Shape sc{2, 16, 32, 32};
  cases.push_back({"zero_pad_shortcut", sc.numel(), [&in, sc](Backend& b, float* dx, bool acc) {
                     b.zero_pad_shortcut_backward_data(ZeroPadShortcutOp{2, 8, 8}, sc, in.dy.data(), dx, acc);
                   }});
  const Shape g{2, 64, 8, 8};
  cases.push_back({"global_avg_pool", g.numel(), [&in, g](Backend& b, float* dx, bool acc) {
                     b.global_avg_pool_backward_data(g, in.dy.data(), dx, acc);
                   }});
  const Shape p{2, 19, 17, 13};
  for (bool include : {true, false})
    cases.push_back({std::string("avg_pool ") + (include ? "incl" : "excl"), p.numel(),
                     [&in, p, include](Backend& b, float* dx, bool acc) {
                       b.avg_pool_backward_data(AvgPoolOp{3, 3, 2, 2, 1, 0, 1, 1, include}, p, in.dy.data(), dx, acc);
                     }});
  cases.push_back({"dense", 3 * 130, [&in](Backend& b, float* dx, bool acc) {
                     DenseOp op;
                     op.in_features = 130;
                     op.out_features = 17;
                     b.dense_backward_data(op, 3, in.dy.data(), in.weight.data(), dx, acc);
                   }});
  cases.push_back({"softmax", 3 * 10, [&in](Backend& b, float* dx, bool acc) {
                     b.softmax_backward_data(3, 10, in.y.data(), in.dy.data(), dx, acc);
                   }});
  cases.push_back({"max_pool", p.numel(), [&in, p](Backend& b, float* dx, bool acc) {
                     b.max_pool_backward_data(MaxPoolOp{3, 3, 2, 2, 1, 1, 0, 1}, p, in.x.data(), in.dy.data(), dx, acc);
                   }});
  const Shape part{2, 35, 17, 17};
  cases.push_back({"concat", part.numel(), [&in, part](Backend& b, float* dx, bool acc) {
                     b.concat_backward_data(part, 29, 99, in.dy.data(), dx, acc);
                   }});
  const Shape ca{2, 3, 29, 31};
  cases.push_back({"channel_affine", ca.numel(), [&in, ca](Backend& b, float* dx, bool acc) {
                     ChannelAffineOp op;
                     op.scale = {0.5f, -2.0f, 3.0f};
                     op.shift = {1.0f, 2.0f, 3.0f};
                     b.channel_affine_backward_data(op, ca, in.dy.data(), dx, acc);
                   }});
  cases.push_back({"clip", 1001, [&in](Backend& b, float* dx, bool acc) {
                     b.clip_backward_data(ClipOp{0, 0.5f}, 1001, in.y.data(), in.dy.data(), dx, acc);
                   }});
  const Shape sl{2, 7, 13, 11};
  cases.push_back({"slice", sl.numel(), [&in, sl](Backend& b, float* dx, bool acc) {
                     b.slice_backward_data(SliceOp{{1, 2, 3}, {2, 3, 2}, {3, 4, 4}}, sl, in.dy.data(), dx, acc);
                   }});
  cases.push_back({"pad", sl.numel(), [&in, sl](Backend& b, float* dx, bool acc) {
                     b.pad_backward_data(PadOp{{1, 0, 2}, {2, 1, 0}, 3.0f}, sl, in.dy.data(), dx, acc);
                   }});
  // conv2d through make_conv2d (the kernel's fusion does not enter its gradient).
  const Shape cin{3, 16, 16, 16};
  cases.push_back({"conv2d", cin.numel(), [&in, cin](Backend& b, float* dx, bool acc) {
                     Conv2dOp op;
                     op.in_channels = 16;
                     op.out_channels = 32;
                     op.kernel_h = op.kernel_w = 3;
                     op.stride_h = op.stride_w = 2;
                     op.pad_top = op.pad_left = 1;
                     op.pad_bottom = op.pad_right = 0;
                     ConvFusion f;
                     f.relu = true;
                     auto kernel = b.make_conv2d(op, cin, f);
                     kernel->set_weights(in.x.data(), nullptr);
                     kernel->backward_data(in.dy.data(), dx, acc);
                   }});
  return cases;
}

TEST(BackendBackward, CpuMatchesReferenceAndReferenceAccumulates) {
  const auto reference_backend = make_backend("reference");
  const auto cpu_backend = make_backend("cpu");
  const Inputs in;
  uint32_t seed = 50;
  for (const BackendCase& c : backend_cases(in)) {
    const auto prefill = random(c.dx_count, ++seed, -2, 2);
    const std::vector<float> nan(static_cast<size_t>(c.dx_count), kNaN);
    const auto on = [&](Backend& b) { return [&](float* dx, bool acc) { c.call(b, dx, acc); }; };
    const auto ref_overwrite = run(on(*reference_backend), nan, false, "reference " + c.name);
    const auto ref_accumulate = run(on(*reference_backend), prefill, true, "reference " + c.name);
    int64_t nans = 0;
    for (float v : ref_overwrite) nans += std::isnan(v);
    EXPECT_EQ(nans, 0) << "reference " << c.name << ": unwritten elements";
    // The reference adds its finished result onto dx: exactly prefill + overwrite result.
    std::vector<float> want_sum(prefill.size());
    for (size_t i = 0; i < prefill.size(); ++i) want_sum[i] = prefill[i] + ref_overwrite[i];
    expect_close(ref_accumulate.data(), want_sum.data(), c.dx_count, 0, 0, "reference accumulate " + c.name);

    // The CPU backend: the same within the fast kernels' tolerances (conv2d and dense sum
    // long products in another order).
    const auto cpu_overwrite = run(on(*cpu_backend), nan, false, "cpu " + c.name);
    const auto cpu_accumulate = run(on(*cpu_backend), prefill, true, "cpu " + c.name);
    expect_close(cpu_overwrite.data(), ref_overwrite.data(), c.dx_count, 1e-4f, 1e-4f, "cpu overwrite " + c.name);
    expect_close(cpu_accumulate.data(), ref_accumulate.data(), c.dx_count, 1e-4f, 1e-4f, "cpu accumulate " + c.name);
  }
}

TEST(BackendBackward, AttributionKernelsMatchAcrossHostBackends) {
  const auto reference_backend = make_backend("reference");
  const auto cpu_backend = make_backend("cpu");
  const int64_t channels = 35, spatial = 17 * 17, n = channels * spatial;
  const auto a = random(n, 60), b = random(n, 61), g = random(n, 62), sums0 = random(channels, 63);
  std::vector<float> want(n), got(n, kNaN);
  reference_backend->interpolate(n, a.data(), b.data(), 0.7f, want.data());
  cpu_backend->interpolate(n, a.data(), b.data(), 0.7f, got.data());
  expect_close(got.data(), want.data(), n, 1e-6f, 1e-7f, "interpolate");
  auto want_sums = sums0, got_sums = sums0;
  std::vector<float> want_map(n, 1.0f), got_map(n, 1.0f);
  reference_backend->conductance_accumulate(channels, spatial,
                                            {{g.data(), b.data(), a.data(), want_sums.data(), want_map.data()}});
  cpu_backend->conductance_accumulate(channels, spatial, {{g.data(), b.data(), a.data(), got_sums.data(), got_map.data()}});
  expect_close(got_sums.data(), want_sums.data(), channels, 1e-6f, 1e-6f, "conductance sums");
  expect_close(got_map.data(), want_map.data(), n, 0, 0, "conductance map");
  EXPECT_NE(got_sums, sums0);
}

}  // namespace
}  // namespace veto
