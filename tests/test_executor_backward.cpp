// The executor's backward pass (Plan::backward_data): the fused plan of the fast backend
// against the unfused reference plan (every op's own backward, no BN folding, no epilogues),
// the whole-model gradient against finite differences, a small clip/slice/pad graph against
// its reference kernels composed by hand, and a depthwise + dilated convolution graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/reference/clip.h"
#include "kernels/reference/dense.h"
#include "kernels/reference/pad.h"
#include "kernels/reference/slice.h"
#include "runtime/dataset.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/io/npy.h"
#include "runtime/model.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;
const std::string kData = VETO_TEST_DATA_DIR;
const std::string kResnet20 = kRepo + "/models/resnet20.safetensors";

Tensor cifar_records(const Model& m, int64_t n) {
  auto ds = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", m.preprocess, n);
  Tensor x(Shape{n, 3, 32, 32});
  ds->load_batch(0, n, x.data());
  return x;
}

// Seed: one-hot of class (3 + 4 * row) % classes per row.
std::vector<float> one_hot_seed(int64_t rows, int64_t classes) {
  std::vector<float> seed(static_cast<size_t>(rows * classes), 0.0f);
  for (int64_t r = 0; r < rows; ++r) seed[static_cast<size_t>(r * classes + (3 + 4 * r) % classes)] = 1.0f;
  return seed;
}

Tensor download(Backend& b, const Plan& p, const std::string& layer) {
  Tensor t(p.shape(layer));
  b.download(p.gradient(layer), t.data(), static_cast<size_t>(t.numel()));
  return t;
}

// Worst relative L2 distance over the rows (samples) of two gradients.
double worst_row_error(const Tensor& got, const Tensor& want) {
  const int64_t rows = got.shape()[0], per = got.numel() / rows;
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double d = 0, w = 0;
    for (int64_t i = r * per; i < (r + 1) * per; ++i) {
      d += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      w += double(want[i]) * want[i];
    }
    worst = std::max(worst, std::sqrt(d / std::max(w, 1e-30)));
  }
  return worst;
}

void expect_fused_matches_unfused(const Model& m, const Tensor& x, const std::vector<std::string>& layers,
                                  double tolerance) {
  const int64_t n = x.shape()[0], classes = static_cast<int64_t>(m.classes.size());
  auto cpu = make_backend("cpu");
  auto ref = make_backend("reference");
  PlanOptions fused, unfused;
  unfused.fuse = false;
  for (const auto& l : layers) fused.gradients.insert(l), unfused.gradients.insert(l);
  Plan fast(m, *cpu, n, fused), oracle(m, *ref, n, unfused);
  const auto seed = one_hot_seed(n, classes);
  fast.forward(x.data());
  oracle.forward(x.data());
  fast.backward_data(seed.data());
  oracle.backward_data(seed.data());
  for (const auto& l : layers) {
    const Tensor got = download(*cpu, fast, l), want = download(*ref, oracle, l);
    ASSERT_EQ(got.shape(), want.shape()) << l;
    double norm = 0;
    for (float v : want.values()) norm += double(v) * v;
    EXPECT_GT(norm, 0) << l << ": the gradient is identically zero";
    EXPECT_LE(worst_row_error(got, want), tolerance) << m.arch << " gradient at " << l;
  }
}

TEST(ExecutorBackward, FusedCpuMatchesUnfusedReferenceOnResnet20) {
  const Model m = load_model(kResnet20);
  expect_fused_matches_unfused(m, cifar_records(m, 2), {"input", "conv1", "layer1.0", "layer2.0.conv1", "layer2.1", "layer3.2"},
                               1e-4);
}

// After their first run a plan's forward and backward calls are replayed from the backend's
// recording (Backend::record). Every replay must compute on the current input and seed: the
// same numbers as a plan that issues each call itself, whatever ran before.
TEST(ExecutorBackward, ReplayedPassesFollowNewInputsAndSeeds) {
  const Model m = load_model(kResnet20);
  const Tensor x = cifar_records(m, 6);
  const int64_t n = 3, classes = static_cast<int64_t>(m.classes.size());
  auto cpu = make_backend("cpu");
  PlanOptions recorded, direct;
  recorded.gradients = direct.gradients = {"layer2.1"};
  direct.record = false;
  Plan replaying(m, *cpu, n, recorded), issuing(m, *cpu, n, direct);
  const std::vector<float> seed_a = one_hot_seed(n, classes);
  std::vector<float> seed_b(seed_a.rbegin(), seed_a.rend());
  // Inputs a, b, a again and seeds a, b, b: the third pass repeats neither neighbour.
  const float* inputs[] = {x.data(), x.data() + n * 3 * 32 * 32, x.data()};
  const std::vector<float>* seeds[] = {&seed_a, &seed_b, &seed_b};
  std::vector<Tensor> logits;
  for (int pass = 0; pass < 3; ++pass) {
    SCOPED_TRACE(testing::Message() << "pass " << pass);
    replaying.forward(inputs[pass]);
    issuing.forward(inputs[pass]);
    replaying.backward_data(seeds[pass]->data());
    issuing.backward_data(seeds[pass]->data());
    const Tensor got = replaying.logits(), want = issuing.logits();
    EXPECT_EQ(got.values(), want.values());
    EXPECT_EQ(download(*cpu, replaying, "layer2.1").values(), download(*cpu, issuing, "layer2.1").values());
    logits.push_back(got);
  }
  EXPECT_NE(logits[0].values(), logits[1].values());
  EXPECT_EQ(logits[0].values(), logits[2].values());
}

TEST(ExecutorBackward, FusedCpuMatchesUnfusedReferenceOnKerasResnet20v1) {
  const Model m = load_model(kData + "/keras_resnet20v1_random.safetensors");
  expect_fused_matches_unfused(m, cifar_records(m, 2), {"input", "layer1.0", "layer2.0", "layer3.2"}, 1e-4);
}

// A ReLU network's gradient jumps where a pre-activation changes sign, and folding BN
// changes the rounding of every pre-activation: one value near 0 (1.6e-4 in
// Mixed_7c.branch3x3dbl_3b of the Keras fixture, first image) can take one sign in the
// fused plan and the other in the unfused one, which moves the gradients upstream of it by
// percents. So the Keras variant is checked above that spot; the torchvision fixture has no
// such value and is checked all the way down.
TEST(ExecutorBackward, FusedCpuMatchesUnfusedReferenceOnInceptionV3) {
  const std::string tv = "inception_v3_torchvision_w8", keras = "inception_v3_keras_w8";
  expect_fused_matches_unfused(load_model(kData + "/" + tv + ".safetensors"),
                               read_npy(kData + "/golden/" + tv + "_inputs.npy"),
                               {"input", "mixed0", "mixed3", "mixed7", "mixed10"}, 1e-4);
  expect_fused_matches_unfused(load_model(kData + "/" + keras + ".safetensors"),
                               read_npy(kData + "/golden/" + keras + "_inputs.npy"),
                               {"mixed10", "Mixed_7c.branch3x3dbl_3a", "Mixed_7c.branch_pool"}, 1e-4);
}

// dF/dx_i against finite differences of the target logit, in float, at the 16 pixels of
// largest gradient. The network is piecewise linear: the gradient at x is the slope of the
// linear piece x lies in, so it must equal the one-sided difference quotient on a side with
// no kink within h (one pixel moves few pre-activations, so at least one side has none; a
// central difference straddling a kink would average two slopes).
TEST(ExecutorBackward, InputGradientMatchesFiniteDifferences) {
  const Model m = load_model(kResnet20);
  const Tensor x = cifar_records(m, 1);
  auto cpu = make_backend("cpu");
  PlanOptions o;
  o.gradients = {"input"};
  Plan plan(m, *cpu, 1, o);
  const int target = 3;
  std::vector<float> seed(10, 0.0f);
  seed[target] = 1;
  plan.forward(x.data());
  plan.backward_data(seed.data());
  const Tensor g = download(*cpu, plan, "input");
  std::vector<int64_t> order(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) order[static_cast<size_t>(i)] = i;
  std::partial_sort(order.begin(), order.begin() + 16, order.end(),
                    [&](int64_t a, int64_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
  Plan fwd(m, *cpu, 1);
  auto logit_at = [&](int64_t i, double h) {
    Tensor xs = x;
    xs[i] += static_cast<float>(h);
    fwd.forward(xs.data());
    return double(fwd.logits()[target]);
  };
  const double h = 1e-3;  // measured: 1e-2 already crosses kinks, 1e-4 is float noise
  const double f0 = logit_at(0, 0);
  for (int k = 0; k < 16; ++k) {
    const int64_t i = order[static_cast<size_t>(k)];
    const double right = (logit_at(i, h) - f0) / h, left = (f0 - logit_at(i, -h)) / h;
    const double tolerance = 1e-2 * std::fabs(g[i]) + 1e-3;
    EXPECT_TRUE(std::fabs(g[i] - right) <= tolerance || std::fabs(g[i] - left) <= tolerance)
        << "pixel " << i << ": gradient " << g[i] << ", difference quotients " << left << " (left), " << right
        << " (right)";
  }
}

// input -> clip -> slice -> pad -> dense through the executor, against the reference kernels
// composed by hand. Only the input's gradient is asked for, so nothing else is kept: clip's
// output must outlive the later steps (whose buffers could take its place) for its backward.
TEST(ExecutorBackward, ClipSlicePadMatchTheReferenceKernelsComposedByHand) {
  const ClipOp clip{-0.5f, 0.5f};
  const SliceOp slice{{1, 0, 2}, {2, 2, 3}, {2, 3, 2}};  // (4,6,7) -> (2,3,2)
  const PadOp pad{{1, 0, 2}, {0, 1, 0}, 0.75f};          // -> (3,4,4)
  const int64_t n = 2, classes = 5, features = 3 * 4 * 4;
  Model m;
  m.arch = "clip_slice_pad";
  const int x = m.graph.add("input", InputOp{Shape{4, 6, 7}});
  const int c = m.graph.add("clip", clip, {x});
  const int s = m.graph.add("slice", slice, {c});
  const int p = m.graph.add("pad", pad, {s});
  m.graph.add("dense", DenseOp{features, classes, true}, {p});
  m.params = ParamArena(m.graph.param_specs());
  std::vector<float> params(static_cast<size_t>(m.params.size()));
  fill_uniform(params, 1);
  std::copy(params.begin(), params.end(), m.params.data());
  m.classes = {"a", "b", "c", "d", "e"};

  std::vector<float> input(static_cast<size_t>(n * 4 * 6 * 7));
  fill_uniform(input, 2);
  std::vector<float> seed(static_cast<size_t>(n * classes));
  fill_uniform(seed, 3);

  // By hand: forward, then backward from the seed.
  const float* w = m.params.get("dense.weight");
  std::vector<float> clipped(input.size()), sliced(static_cast<size_t>(n * 2 * 3 * 2)),
      padded(static_cast<size_t>(n * features)), logits(seed.size());
  reference::clip_forward(clip, static_cast<int64_t>(input.size()), input.data(), clipped.data());
  reference::slice_forward(slice, n, 4, 6, 7, clipped.data(), sliced.data());
  reference::pad_forward(pad, n, 2, 3, 2, sliced.data(), padded.data());
  reference::dense_forward(n, features, classes, padded.data(), w, m.params.get("dense.bias"), logits.data());
  std::vector<float> d_padded(padded.size()), d_sliced(sliced.size()), d_clipped(clipped.size()),
      d_input(input.size());
  reference::dense_backward_data(n, features, classes, seed.data(), w, d_padded.data());
  reference::pad_backward_data(pad, n, 2, 3, 2, d_padded.data(), d_sliced.data());
  reference::slice_backward_data(slice, n, 4, 6, 7, d_sliced.data(), d_clipped.data());
  reference::clip_backward_data(clip, static_cast<int64_t>(input.size()), clipped.data(), d_clipped.data(),
                                d_input.data());

  for (const char* kind : {"reference", "cpu"}) {
    auto backend = make_backend(kind);
    PlanOptions o;
    o.gradients = {"input"};
    Plan plan(m, *backend, n, o);
    plan.forward(input.data());
    plan.backward_data(seed.data());
    const Tensor got_logits = plan.logits(), got_gradient = download(*backend, plan, "input");
    expect_close(got_logits.values().data(), logits.data(), n * classes, 1e-5f, 1e-6f, std::string(kind) + " logits");
    expect_close(got_gradient.values().data(), d_input.data(), static_cast<int64_t>(d_input.size()), 1e-5f, 1e-6f,
                 std::string(kind) + " input gradient");
  }
}

// input -> depthwise conv (multiplier 2) -> BN -> relu -> dilated conv -> global avg pool
// -> dense: fused on the CPU backend (BN folded into the depthwise filters, each of which sees
// one input channel, ReLU in the epilogue) against the unfused reference plan.
TEST(ExecutorBackward, DepthwiseAndDilatedConvFusedCpuMatchesUnfusedReference) {
  Conv2dOp depthwise;
  depthwise.in_channels = 4;
  depthwise.out_channels = 8;
  depthwise.kernel_h = depthwise.kernel_w = 3;
  depthwise.pad_top = depthwise.pad_left = depthwise.pad_bottom = depthwise.pad_right = 1;
  depthwise.groups = 4;
  Conv2dOp dilated;
  dilated.in_channels = 8;
  dilated.out_channels = 6;
  dilated.kernel_h = dilated.kernel_w = 3;
  dilated.pad_top = dilated.pad_left = dilated.pad_bottom = dilated.pad_right = 2;
  dilated.dilation_h = dilated.dilation_w = 2;
  dilated.has_bias = true;
  const int64_t n = 3, classes = 5;
  Model m;
  m.arch = "depthwise_dilated";
  const int x = m.graph.add("input", InputOp{Shape{4, 10, 10}});
  const int dw = m.graph.add("dw", depthwise, {x});
  const int bn = m.graph.add("bn", BatchNormOp{8, 1e-3f}, {dw});
  const int relu = m.graph.add("relu", ReluOp{}, {bn});
  const int dil = m.graph.add("dilated", dilated, {relu});
  const int pool = m.graph.add("pool", GlobalAvgPoolOp{}, {dil});
  m.graph.add("fc", DenseOp{6, classes, true}, {pool});
  m.params = ParamArena(m.graph.param_specs());
  std::vector<float> params(static_cast<size_t>(m.params.size()));
  fill_uniform(params, 11);
  std::copy(params.begin(), params.end(), m.params.data());
  std::vector<float> var(8);
  fill_uniform(var, 12, 0.5f, 1.5f);
  std::copy(var.begin(), var.end(), m.params.get("bn.running_var"));
  m.classes = {"a", "b", "c", "d", "e"};

  Tensor input(Shape{n, 4, 10, 10});
  fill_uniform(input.values(), 13);
  std::vector<float> seed(static_cast<size_t>(n * classes));
  fill_uniform(seed, 14);

  auto cpu = make_backend("cpu");
  auto ref = make_backend("reference");
  PlanOptions fused, unfused;
  unfused.fuse = false;
  fused.gradients = unfused.gradients = {"input"};
  Plan fast(m, *cpu, n, fused), oracle(m, *ref, n, unfused);
  fast.forward(input.data());
  oracle.forward(input.data());
  const Tensor got_logits = fast.logits(), want_logits = oracle.logits();
  expect_close(got_logits.values().data(), want_logits.values().data(), n * classes, 1e-4f, 1e-5f, "logits");
  fast.backward_data(seed.data());
  oracle.backward_data(seed.data());
  const Tensor got = download(*cpu, fast, "input"), want = download(*ref, oracle, "input");
  ASSERT_EQ(got.shape(), want.shape());
  double norm = 0;
  for (float v : want.values()) norm += double(v) * v;
  EXPECT_GT(norm, 0) << "the input gradient is identically zero";
  EXPECT_LE(worst_row_error(got, want), 1e-4) << "input gradient";
}

TEST(ExecutorBackward, ErrorsNameTheProblem) {
  const Model m = load_model(kResnet20);
  auto cpu = make_backend("cpu");
  Plan forward_only(m, *cpu, 1);
  std::vector<float> seed(10, 0.0f);
  EXPECT_THROW(forward_only.backward_data(seed.data()), Error);
  PlanOptions o;
  o.gradients = {"layer2.1"};
  Plan plan(m, *cpu, 1, o);
  try {
    plan.gradient("layer1.0");
    FAIL() << "no error for a layer without a gradient";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer1.0"), std::string::npos) << e.what();
  }
  o.gradients = {"no_such_layer"};
  EXPECT_THROW(Plan(m, *cpu, 1, o), Error);
}

}  // namespace
}  // namespace veto
