// Layer conductance (runtime/conductance.h): Captum's toy check, the integration rules,
// completeness on cut layers, chunking invariance, and agreement with Captum's
// LayerConductance on ResNet-20 and InceptionV3 (fixtures by weights_tools/conductance_golden.py).
#include <gtest/gtest.h>

#include <iostream>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/backend.h"
#include "runtime/conductance.h"
#include "runtime/dataset.h"
#include "runtime/executor.h"
#include "runtime/error.h"
#include "runtime/io/npy.h"
#include "runtime/model.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

// Captum's BasicModel_MultiLayer (captum/testing/helpers/basic_models.py): linear0 = identity,
// linear1 = ones(4,3) with bias [-10, 1, 1, 1], ReLU, linear2 = ones(2,4) with bias [-1, 0].
Model captum_multilayer_model() {
  Model m;
  m.arch = "captum_basic_multilayer";
  const int x = m.graph.add("input", InputOp{Shape{3, 1, 1}});
  const int l0 = m.graph.add("linear0", DenseOp{3, 3, true}, {x});
  const int l1 = m.graph.add("linear1", DenseOp{3, 4, true}, {l0});
  const int r = m.graph.add("relu", ReluOp{}, {l1});
  m.graph.add("linear2", DenseOp{4, 2, true}, {r});
  m.params = ParamArena(m.graph.param_specs());
  float* w0 = m.params.get("linear0.weight");
  for (int i = 0; i < 3; ++i) w0[i * 3 + i] = 1;
  std::fill_n(m.params.get("linear1.weight"), 12, 1.0f);
  const float b1[4] = {-10, 1, 1, 1};
  std::copy(b1, b1 + 4, m.params.get("linear1.bias"));
  std::fill_n(m.params.get("linear2.weight"), 8, 1.0f);
  m.params.get("linear2.bias")[0] = -1;
  m.classes = {"zero", "one"};
  return m;
}

std::vector<float> toy_conductance(const std::string& backend_kind, ConductanceRule rule) {
  const Model m = captum_multilayer_model();
  auto backend = make_backend(backend_kind);
  ConductanceOptions o;
  o.layers = {"linear1"};
  o.rule = rule;
  o.steps = 10;
  ConductanceEngine engine(m, *backend, o);
  const float input[3] = {0, 100, 0};
  const ConductanceResult r = engine.run(input, 1, {0});
  EXPECT_EQ(r.targets[0], 0);
  return r.conductance[0].values();
}

TEST(Conductance, CaptumToyCheckPaperRule) {
  for (const char* backend : {"reference", "cpu"}) {
    const auto c = toy_conductance(backend, ConductanceRule::Paper);
    ASSERT_EQ(c.size(), 4u);
    const float want[4] = {90, 100, 100, 100};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(c[i], want[i], 1e-4) << backend << " neuron " << i;
  }
}

TEST(Conductance, CaptumToyCheckCaptumRules) {
  for (const char* backend : {"reference", "cpu"}) {
    const auto t = toy_conductance(backend, ConductanceRule::RiemannTrapezoid);
    const float want_t[4] = {80, 100, 100, 100};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(t[i], want_t[i], 1e-4) << backend << " trapezoid neuron " << i;
    const auto g = toy_conductance(backend, ConductanceRule::GaussLegendre);
    const float want_g[4] = {85.419f, 97.823f, 97.823f, 97.823f};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(g[i], want_g[i], 1e-3) << backend << " gausslegendre neuron " << i;
  }
}

const std::string kRepo = VETO_REPO_DIR;
const std::string kData = VETO_TEST_DATA_DIR;

Tensor cifar_records(const Model& m, int64_t n) {
  auto ds = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", m.preprocess, n);
  Tensor x(Shape{n, 3, 32, 32});
  ds->load_batch(0, n, x.data());
  return x;
}

TEST(Conductance, GaussLegendreNodesMatchNumpy) {
  const auto three = gauss_legendre_nodes(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_NEAR(three[0], -std::sqrt(0.6), 1e-15);
  EXPECT_NEAR(three[1], 0.0, 1e-15);
  EXPECT_NEAR(three[2], std::sqrt(0.6), 1e-15);
  // numpy.polynomial.legendre.leggauss(11)[0][:2]
  const auto eleven = gauss_legendre_nodes(11);
  EXPECT_NEAR(eleven[0], -0.9782286581460570, 1e-14);
  EXPECT_NEAR(eleven[1], -0.8870625997680953, 1e-14);
  for (size_t i = 1; i < eleven.size(); ++i) EXPECT_LT(eleven[i - 1], eleven[i]);
}

TEST(Conductance, IntegrationPathsFollowCaptumsNodes) {
  const auto paper = integration_path(ConductanceRule::Paper, 10);
  EXPECT_TRUE(paper.gradient_at_upper);
  ASSERT_EQ(paper.alphas.size(), 11u);
  EXPECT_EQ(paper.alphas.front(), 0.0);
  EXPECT_EQ(paper.alphas.back(), 1.0);
  const auto left = integration_path(ConductanceRule::RiemannLeft, 3);  // linspace(0, 0.75, 4)
  EXPECT_FALSE(left.gradient_at_upper);
  EXPECT_EQ(left.alphas, (std::vector<double>{0, 0.25, 0.5, 0.75}));
  EXPECT_EQ(integration_path(ConductanceRule::RiemannRight, 3).alphas, (std::vector<double>{0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(integration_path(ConductanceRule::RiemannMiddle, 3).alphas,
            (std::vector<double>{0.125, 0.375, 0.625, 0.875}));
  EXPECT_EQ(integration_path(ConductanceRule::RiemannTrapezoid, 3).alphas,
            (std::vector<double>{0, 1.0 / 3, 2.0 / 3, 1}));
  for (const auto& name : conductance_rule_names())
    EXPECT_EQ(conductance_rule_name(parse_conductance_rule(name)), name);
  EXPECT_THROW(parse_conductance_rule("simpson"), Error);
}

// On a layer every path crosses, the conductance map sums to F(x) - F(baseline) as the
// steps grow (METHOD.md §1). A ReLU network's path integrand jumps wherever a unit switches,
// so the error shrinks unevenly: measured on 32 records x 9 blocks at 300 steps, |delta| is
// 0.4% of |F(x) - F(0)| on average and at most 3.3% (8% of the pairs above 1%); at 1000
// steps all are within 0.3%. Checked here: the mean within 1%, every one within 5%.
TEST(Conductance, CutLayersAreCompleteAt300Steps) {
  const Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto cpu = make_backend("cpu");
  ConductanceOptions o;
  o.layers = m.graph.blocks();
  o.layers.insert(o.layers.begin(), "conv1");
  o.steps = 300;
  ConductanceEngine engine(m, *cpu, o);
  const int64_t n = 4, layers = static_cast<int64_t>(o.layers.size());
  const Tensor x = cifar_records(m, n);
  const ConductanceResult r = engine.run(x.data(), n);
  Plan plan(m, *cpu, 1);
  const Tensor zero(Shape{1, 3, 32, 32});
  plan.forward(zero.data());
  const Tensor base = plan.logits();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int t = r.targets[static_cast<size_t>(i)];
    const double change = r.logits[i * 10 + t] - base[t];
    ASSERT_GT(std::fabs(change), 1.0);
    for (int64_t l = 0; l < layers; ++l) {
      const double rel = std::fabs(r.delta[i * layers + l]) / std::fabs(change);
      EXPECT_LE(rel, 0.05) << "image " << i << " layer " << o.layers[static_cast<size_t>(l)];
      sum += rel;
    }
  }
  EXPECT_LE(sum / static_cast<double>(n * layers), 0.01);
}

// Rows are images x steps, cut into passes of chunk_rows: any cut gives the same numbers.
TEST(Conductance, ResultsDoNotDependOnTheChunkSize) {
  const Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto cpu = make_backend("cpu");
  const Tensor x = cifar_records(m, 3);
  for (ConductanceRule rule : {ConductanceRule::Paper, ConductanceRule::GaussLegendre}) {
    std::vector<ConductanceResult> results;
    for (int64_t chunk : {1, 4, 7, 1000}) {
      ConductanceOptions o;
      o.layers = {"layer1.1", "layer3.0"};
      o.rule = rule;
      o.steps = 5;
      o.chunk_rows = chunk;
      o.maps = true;
      ConductanceEngine engine(m, *cpu, o);
      results.push_back(engine.run(x.data(), 3));
    }
    for (size_t k = 1; k < results.size(); ++k)
      for (size_t l = 0; l < 2; ++l) {
        EXPECT_EQ(results[k].conductance[l].values(), results[0].conductance[l].values())
            << conductance_rule_name(rule) << " chunk #" << k << " layer " << l;
        EXPECT_EQ(results[k].maps[l].values(), results[0].maps[l].values());
        EXPECT_EQ(results[k].delta.values(), results[0].delta.values());
      }
  }
}

TEST(Conductance, TargetsPredictionsAndBaselines) {
  const Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto cpu = make_backend("cpu");
  const Tensor x = cifar_records(m, 2);
  ConductanceOptions o;
  o.layers = {"layer3.2"};
  ConductanceEngine engine(m, *cpu, o);
  const ConductanceResult predicted = engine.run(x.data(), 2);
  Plan plan(m, *cpu, 2);
  plan.forward(x.data());
  EXPECT_EQ(predicted.logits.values(), plan.logits().values());  // alpha = 1 is the input itself
  const ConductanceResult given = engine.run(x.data(), 2, {7, -1});
  EXPECT_EQ(given.targets, (std::vector<int>{7, predicted.predictions[1]}));
  EXPECT_EQ(given.predictions, predicted.predictions);
  EXPECT_NE(given.conductance[0].values(), predicted.conductance[0].values());
  EXPECT_THROW(engine.run(x.data(), 2, {10, 0}), Error);
  // The baseline equal to the input: no path, no conductance.
  ConductanceOptions same = o;
  same.baseline = Tensor(Shape{3, 32, 32}, std::vector<float>(x.data(), x.data() + 3 * 32 * 32));
  ConductanceEngine zero_path(m, *cpu, same);
  const ConductanceResult none = zero_path.run(x.data(), 1);
  for (float v : none.conductance[0].values()) EXPECT_EQ(v, 0.0f);
}

TEST(Conductance, BadOptionsAreErrors) {
  const Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto cpu = make_backend("cpu");
  ConductanceOptions o;
  EXPECT_THROW(ConductanceEngine(m, *cpu, o), Error);  // no layers
  o.layers = {"layer9.9"};
  EXPECT_THROW(ConductanceEngine(m, *cpu, o), Error);
  o.layers = {"layer1.0"};
  o.max_memory = 1024;
  try {
    ConductanceEngine engine(m, *cpu, o);
    FAIL() << "no error for a memory bound below one row";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MiB"), std::string::npos) << e.what();
  }
  o.max_memory = size_t(1) << 30;
  o.baseline = Tensor(Shape{3, 16, 16});
  EXPECT_THROW(ConductanceEngine(m, *cpu, o), Error);
  o.baseline = Tensor();
  ConductanceEngine engine(m, *cpu, o);
  Tensor x = cifar_records(m, 1);
  x[5] = std::nanf("");
  EXPECT_THROW(engine.run(x.data(), 1), Error);
}

// Against captum.attr.LayerConductance (weights_tools/conductance_golden.py; Captum 0.7,
// PyTorch 1.13, computed in float64), n = 10, for the three rules; the paper rule's golden is
// Captum's reversed path (inputs = baseline, baselines = x, trapezoid), negated.
// A 10-step Riemann sum over a ReLU network is discontinuous in its input: where a
// pre-activation at one of the path's points lies within rounding of 0, a float32 engine may
// switch that unit on or off relative to float64, and the gradient of every layer below it
// moves, by up to percents (the golden script measures it: a 1e-7 relative input perturbation
// in float64, or Captum in float32, moves some values by 1e-3 on ResNet-20 and 4e-2 on the
// Keras fixture; which units flip depends on the rounding, so on the CPU's ISA too). So:
//  - the last block is always exact to 1e-4: the logit is linear in it, there are no kinks
//    between it and F, and its activations are continuous in the input;
//  - a systematic error would move most values: the median over images x layers x rules is
//    within `max_median`, and at least `min_within` of them are within 1e-4;
//  - no value is off by more than the kinks can move it (5e-2);
//  - the convergence deltas of the last block agree within 1e-3 (relative, at least absolute).
struct CaptumAgreement {
  double median = 0, within = 0, worst = 0, worst_last_block = 0;
};

CaptumAgreement expect_matches_captum(const std::string& model_file, const std::string& inputs_file, int64_t images,
                                      const std::string& stem, double max_median, double min_within) {
  const Model m = load_model(model_file);
  const Tensor inputs = read_npy(inputs_file);
  auto cpu = make_backend("cpu");
  const Tensor targets = read_npy(kData + "/golden/conductance_" + stem + "_targets.npy");
  std::vector<double> errors;
  double worst_last_block = 0;
  for (ConductanceRule rule : {ConductanceRule::Paper, ConductanceRule::RiemannTrapezoid, ConductanceRule::GaussLegendre}) {
    const std::string name = conductance_rule_name(rule), golden = kData + "/golden/conductance_" + stem + "_" + name;
    const Tensor want = read_npy(golden + ".npy");
    const Tensor want_delta = read_npy(golden + "_delta.npy");
    ConductanceOptions o;
    o.layers = m.graph.blocks();
    o.rule = rule;
    o.steps = 10;
    ConductanceEngine engine(m, *cpu, o);
    const ConductanceResult r = engine.run(inputs.data(), images);
    const int64_t features = want.shape()[1], layers = static_cast<int64_t>(o.layers.size());
    for (int64_t i = 0; i < images; ++i) {
      EXPECT_EQ(r.targets[static_cast<size_t>(i)], static_cast<int>(targets[i])) << stem << " image " << i;
      int64_t at = 0;
      for (int64_t l = 0; l < layers; ++l) {
        const int64_t c = r.conductance[l].shape()[1];
        double d = 0, w = 0;
        for (int64_t k = 0; k < c; ++k) {
          const double got = r.conductance[l][i * c + k], ref = want[i * features + at + k];
          d += (got - ref) * (got - ref);
          w += ref * ref;
        }
        at += c;
        const double error = std::sqrt(d / w);
        errors.push_back(error);
        const std::string where = stem + " " + name + " image " + std::to_string(i) + " layer " + o.layers[l];
        EXPECT_LE(error, 5e-2) << where;
        if (l == layers - 1) {
          worst_last_block = std::max(worst_last_block, error);
          EXPECT_LE(error, 1e-4) << where;
          const double got_delta = r.delta[i * layers + l], ref_delta = want_delta[i * layers + l];
          EXPECT_NEAR(got_delta, ref_delta, 1e-3 * std::max(1.0, std::fabs(ref_delta))) << where << ": delta";
        }
      }
      EXPECT_EQ(at, features);
    }
  }
  CaptumAgreement a;
  std::sort(errors.begin(), errors.end());
  a.median = errors[errors.size() / 2];
  a.worst = errors.back();
  a.worst_last_block = worst_last_block;
  a.within = static_cast<double>(std::count_if(errors.begin(), errors.end(), [](double e) { return e <= 1e-4; })) /
             static_cast<double>(errors.size());
  EXPECT_LE(a.median, max_median) << stem;
  EXPECT_GE(a.within, min_within) << stem;
  std::cout << stem << ": " << errors.size() << " values, median relative L2 " << a.median << ", within 1e-4 "
            << a.within << ", worst " << a.worst << ", worst on the last block " << a.worst_last_block << "\n";
  return a;
}

// Measured with oneDNN on an Intel AVX-512 machine, and capped at AVX2 and SSE4.1
// (DNNL_MAX_CPU_ISA): the median is 4e-7..8e-7 (ResNet-20) and 6e-6..7e-6 (torchvision w/8),
// with 91-94% and 88-100% of the values within 1e-4; worst 1.4e-3 and 6.7e-3. On an AMD EPYC
// (AVX2) the torchvision w/8 fixture has only 52% within 1e-4 (median 1.2e-5, worst 4.0e-3;
// 82% when capped at SSE4.1), so its floor is 50%: no less than its median bound says.
// The Keras w/8 fixture (3x3 maps and few channels at d = 8) is kink-bound: median
// 1.1e-3..3.3e-3, 38-50% within 1e-4, worst 3.5e-2, the size of Captum's own float32
// deviation from float64 on it (3.5e-2).
TEST(Conductance, MatchesCaptumOnResnet20) {
  expect_matches_captum(kRepo + "/models/resnet20.safetensors", kData + "/golden/resnet20_inputs_0-7.npy", 4,
                        "resnet20", 1e-4, 0.8);
}

TEST(Conductance, MatchesCaptumOnInceptionV3) {
  const std::string tv = "inception_v3_torchvision_w8", keras = "inception_v3_keras_w8";
  expect_matches_captum(kData + "/" + tv + ".safetensors", kData + "/golden/" + tv + "_inputs.npy", 2, tv, 1e-4, 0.5);
  expect_matches_captum(kData + "/" + keras + ".safetensors", kData + "/golden/" + keras + "_inputs.npy", 2, keras,
                        1e-2, 0.25);
}

}  // namespace
}  // namespace veto
