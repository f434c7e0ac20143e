// The Label Change Rate (runtime/lcr.h): the incremental plan against full forwards of the
// mutated model, the fast path against the naive one (copy, mutate, full forward) on
// ResNet-20 and a reduced InceptionV3, parameters restored bit-exactly, batch invariance,
// the SPRT, and mutant acceptance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/backend.h"
#include "runtime/dataset.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/lcr.h"
#include "runtime/model.h"
#include "runtime/mutation.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;
const std::string kData = VETO_TEST_DATA_DIR;
const std::string kCifar = kRepo + "/data/cifar10_test_0-999.bin";

Model resnet20() { return load_model(kRepo + "/models/resnet20.safetensors"); }

Tensor cifar_records(const Model& m, int64_t n) {
  auto ds = open_cifar_dataset(kCifar, m.preprocess, n);
  Tensor x(Shape{n, 3, 32, 32});
  ds->load_batch(0, n, x.data());
  return x;
}

// Seeded inputs of the model's shape (the reduced InceptionV3 fixtures take 139x139).
Tensor random_inputs(const Model& m, int64_t n, uint32_t seed) {
  Tensor x(m.graph.node(0).shape.with_batch(n));
  fill_uniform(x.values(), seed);
  return x;
}

std::vector<WeightDelta> draw_deltas(const Model& m, MutationOperator op, double gamma, int64_t count, uint64_t seed) {
  const MutantGenerator gen(m, op, gamma, seed);
  std::vector<WeightDelta> out;
  for (int64_t d = 0; d < count; ++d) out.push_back(resolve_mutant(m, gen.draw(d)));
  return out;
}

// Logits of a fresh, non-incremental plan over the model as it is now.
Tensor full_forward(const Model& m, Backend& b, const Tensor& x) {
  Plan plan(m, b, x.shape()[0]);
  plan.forward(x.data());
  return plan.logits();
}

void expect_bitwise_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), static_cast<size_t>(got.numel()) * sizeof(float)), 0) << what;
}

// Mutants in an order that makes the incremental plan restore values an earlier mutant
// overwrote (late layer, then early, then late again), each against a full forward.
void expect_incremental_matches_full(Model& m, const Tensor& x, const std::vector<WeightDelta>& deltas) {
  auto backend = make_backend("cpu");
  PlanOptions options;
  options.incremental = true;
  Plan plan(m, *backend, x.shape()[0], options);
  plan.forward(x.data());
  const Tensor original = plan.logits();
  expect_bitwise_equal(original, full_forward(m, *backend, x), "original");
  // Twice over: the second round replays the recorded recomputations (Backend::record) after
  // other histories of restored values.
  for (size_t k = 0; k < 2 * deltas.size(); ++k) {
    const size_t i = k % deltas.size();
    Tensor want, got;
    {
      const ScopedDelta applied(m.params, deltas[i]);
      refresh_changed_filters(plan, deltas[i]);
      plan.forward_changed(deltas[i].convs);
      got = plan.logits();
      want = full_forward(m, *backend, x);
    }
    refresh_changed_filters(plan, deltas[i]);
    expect_bitwise_equal(got, want, "mutant " + std::to_string(i));
    EXPECT_NE(std::memcmp(got.data(), original.data(), static_cast<size_t>(got.numel()) * sizeof(float)), 0);
  }
  // Nothing changed: every value the mutants overwrote comes back from the full forward.
  plan.forward_changed({});
  expect_bitwise_equal(plan.logits(), original, "after the mutants");
}

TEST(IncrementalPlan, ForwardChangedEqualsAFullForwardOfTheMutatedModel) {
  Model m = resnet20();
  const Tensor x = cifar_records(m, 12);
  // One filter per mutant in a chosen layer: late, early, late elsewhere, the first conv.
  std::vector<WeightDelta> deltas;
  for (const char* layer : {"layer3.1.conv2", "layer1.0.conv1", "layer2.2.conv1", "conv1", "layer3.2.conv2"}) {
    const Mutant mu = MutantGenerator(m, MutationOperator::NAI, 1e-9, 1, {layer}).draw(0);
    deltas.push_back(resolve_mutant(m, mu));
  }
  expect_incremental_matches_full(m, x, deltas);
}

TEST(IncrementalPlan, ForwardChangedOnInceptionBranches) {
  Model m = load_model(kData + "/inception_v3_torchvision_w8.safetensors");
  const Tensor x = random_inputs(m, 2, 5);
  // Sibling branches of one block (the concat reads the restored sibling), then the stem.
  std::vector<WeightDelta> deltas;
  for (const char* layer : {"Mixed_6b.branch7x7_2", "Mixed_6b.branch1x1", "Mixed_6b.branch7x7dbl_4", "Conv2d_1a_3x3",
                            "Mixed_7c.branch_pool"}) {
    const Mutant mu = MutantGenerator(m, MutationOperator::GF, 1e-9, 3, {layer}).draw(0);
    ASSERT_EQ(mu.edits.size(), 1u) << layer;
    deltas.push_back(resolve_mutant(m, mu));
  }
  expect_incremental_matches_full(m, x, deltas);
}

TEST(IncrementalPlan, FoldedBatchNormKeepsTheOperatorsSemantics) {
  // The fused plan folds BN into the convolution; a mutant changes the unfolded filter and
  // the plan re-folds it, so NAI gives BN(-z) as in the paper's code. The unfused reference
  // backend runs conv then BN as written: both must agree on the mutated model.
  Model m = resnet20();
  const Tensor x = cifar_records(m, 4);
  auto cpu = make_backend("cpu"), reference = make_backend("reference");
  PlanOptions incremental, unfused;
  incremental.incremental = true;
  unfused.fuse = false;
  Plan fast(m, *cpu, 4, incremental);
  fast.forward(x.data());
  for (const WeightDelta& d : draw_deltas(m, MutationOperator::NAI, 0.02, 3, 8)) {
    Tensor got, want;
    {
      const ScopedDelta applied(m.params, d);
      refresh_changed_filters(fast, d);
      fast.forward_changed(d.convs);
      Plan oracle(m, *reference, 4, unfused);
      oracle.forward(x.data());
      got = fast.logits();
      want = oracle.logits();
    }
    refresh_changed_filters(fast, d);
    expect_close(got.data(), want.data(), got.numel(), 1e-4f, 1e-4f, "NAI mutant vs unfused reference");
  }
}

TEST(IncrementalPlan, NeedsAFullForwardFirst) {
  Model m = resnet20();
  auto backend = make_backend("cpu");
  PlanOptions options;
  options.incremental = true;
  Plan plan(m, *backend, 2, options);
  EXPECT_THROW(plan.forward_changed({1}), Error);
  Plan ordinary(m, *backend, 2);
  EXPECT_THROW(ordinary.forward_changed({1}), Error);
}

// The fast path's mutant predictions equal the naive path's exactly, and the model's
// parameters are bit-identical afterwards.
void expect_fast_equals_naive(Model& m, const Tensor& x, const std::vector<WeightDelta>& deltas) {
  const std::vector<float> before(m.params.data(), m.params.data() + m.params.size());
  auto backend = make_backend("cpu");
  const int64_t n = x.shape()[0];
  MutantRunner fast(m, *backend, n), naive(m, *backend, n, true);
  const std::vector<int> p_fast = fast.load(x.data(), n), p_naive = naive.load(x.data(), n);
  EXPECT_EQ(p_fast, p_naive);
  int64_t changes = 0;
  for (size_t i = 0; i < deltas.size(); ++i) {
    const std::vector<int> a = fast.predict(deltas[i]), b = naive.predict(deltas[i]);
    EXPECT_EQ(a, b) << "mutant " << i;
    for (int64_t k = 0; k < n; ++k) changes += a[static_cast<size_t>(k)] != p_fast[static_cast<size_t>(k)];
  }
  EXPECT_GT(changes, 0);  // the mutants do change predictions: the comparison has teeth
  EXPECT_EQ(std::memcmp(m.params.data(), before.data(), before.size() * sizeof(float)), 0);
  expect_bitwise_equal(fast.logits(), full_forward(m, *backend, x), "original logits after the mutants");
}

TEST(MutantRunner, FastPathEqualsNaiveOnResnet20) {
  Model m = resnet20();
  const Tensor x = cifar_records(m, 24);
  for (MutationOperator op : {MutationOperator::NAI, MutationOperator::GF, MutationOperator::WS, MutationOperator::NS})
    expect_fast_equals_naive(m, x, draw_deltas(m, op, 0.03, 6, 17));
}

TEST(MutantRunner, FastPathEqualsNaiveOnInceptionV3) {
  Model m = load_model(kData + "/inception_v3_torchvision_w8.safetensors");
  const Tensor x = random_inputs(m, 3, 9);
  expect_fast_equals_naive(m, x, draw_deltas(m, MutationOperator::GF, 0.01, 5, 4));
}

TEST(MutantRunner, RefusesNonFiniteInputs) {
  Model m = resnet20();
  auto backend = make_backend("cpu");
  Tensor x = cifar_records(m, 2);
  x[3072 + 100] = std::nanf("");
  MutantRunner runner(m, *backend, 2);
  try {
    runner.load(x.data(), 2);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "image 1 of the batch holds a non-finite value (at 100)");
  }
}

TEST(Lcr, SameResultsForAnyBatchSize) {
  Model m = resnet20();
  auto data = open_cifar_dataset(kCifar, m.preprocess, 40);
  const auto deltas = draw_deltas(m, MutationOperator::NAI, 0.01, 8, 2);
  auto backend = make_backend("cpu");
  MutantRunner big(m, *backend, 64), small(m, *backend, 7);
  const LcrResult a = compute_lcr(big, *data, deltas), b = compute_lcr(small, *data, deltas);
  EXPECT_EQ(a.predictions, b.predictions);
  EXPECT_EQ(a.mutant_predictions, b.mutant_predictions);
  EXPECT_EQ(a.changes, b.changes);
  EXPECT_EQ(a.mutant_forwards, 40 * 8);
  int64_t total = 0;
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(a.used[static_cast<size_t>(i)], 8);
    int64_t c = 0;
    for (int64_t k = 0; k < 8; ++k) c += a.mutant_predictions[static_cast<size_t>(i * 8 + k)] != a.predictions[static_cast<size_t>(i)];
    EXPECT_EQ(c, a.changes[static_cast<size_t>(i)]);
    EXPECT_DOUBLE_EQ(a.lcr(i), c / 8.0);
    total += c;
  }
  EXPECT_GT(total, 0);
}

TEST(Sprt, DecidesAtTheWaldBounds) {
  // zeta 0.1: ln(p1/p0) = ln(0.11/0.09) = 0.2007 per change, ln(0.89/0.91) = -0.02222 per
  // non-change, bounds +-ln(19) = +-2.944.
  const Sprt s(0.1);
  EXPECT_NEAR(s.upper, std::log(19.0), 1e-12);
  EXPECT_NEAR(s.lower, -std::log(19.0), 1e-12);
  EXPECT_EQ(s.decide(14, 14), Sprt::Undecided);  // 2.81
  EXPECT_EQ(s.decide(15, 15), Sprt::Suspicious);  // 3.01
  EXPECT_EQ(s.decide(0, 132), Sprt::Undecided);   // -2.933
  EXPECT_EQ(s.decide(0, 133), Sprt::Stable);      // -2.955
  EXPECT_EQ(s.decide(16, 20), Sprt::Suspicious);  // 3.211 - 0.089
  EXPECT_EQ(s.decide(5, 20), Sprt::Undecided);    // 1.004 - 0.333
  EXPECT_THROW(Sprt(0.0), Error);
  EXPECT_THROW(Sprt(0.95), Error);
}

TEST(Lcr, SprtStopsDecidedInputsEarly) {
  Model m = resnet20();
  auto data = open_cifar_dataset(kCifar, m.preprocess, 32);
  // GF over every filter of layer3: most predictions change, so SPRT calls those early.
  std::vector<WeightDelta> deltas;
  const MutantGenerator gen(m, MutationOperator::GF, 0.5, 1, {"layer3"});
  for (int64_t d = 0; d < 40; ++d) deltas.push_back(resolve_mutant(m, gen.draw(d)));
  auto backend = make_backend("cpu");
  MutantRunner runner(m, *backend, 32);
  LcrOptions options;
  options.sprt = true;
  options.sprt_threshold = 0.1;
  const LcrResult full = compute_lcr(runner, *data, deltas), sprt = compute_lcr(runner, *data, deltas, options);
  const Sprt test(0.1);
  int64_t early = 0;
  for (int64_t i = 0; i < 32; ++i) {
    const auto at = static_cast<size_t>(i);
    const int64_t used = sprt.used[at];
    early += used < 40;
    // The decision is the first one the test reaches on the full sequence of changes.
    int64_t c = 0, k = 0;
    Sprt::Decision d = Sprt::Undecided;
    for (; k < 40 && d == Sprt::Undecided; ++k) {
      c += full.mutant_predictions[at * 40 + static_cast<size_t>(k)] != full.predictions[at];
      d = test.decide(c, k + 1);
    }
    EXPECT_EQ(sprt.decisions[at], d) << i;
    EXPECT_EQ(used, k) << i;
    EXPECT_EQ(sprt.changes[at], c) << i;
    for (int64_t j = used; j < 40; ++j) EXPECT_EQ(sprt.mutant_predictions[at * 40 + static_cast<size_t>(j)], -1);
  }
  EXPECT_GT(early, 0);
}

TEST(BuildMutantSet, KeepsTheFirstPassingDrawsWhateverTheBatch) {
  Model m = resnet20();
  auto data = open_cifar_dataset(kCifar, m.preprocess, 60);
  MutantBuildOptions options;
  options.op = MutationOperator::NAI;
  options.gamma = 0.005;
  options.seed = 9;
  options.count = 4;
  auto backend = make_backend("cpu");
  MutantRunner a(m, *backend, 64), b(m, *backend, 13);
  const MutantSet s = build_mutant_set(m, a, *data, options), t = build_mutant_set(m, b, *data, options);
  ASSERT_EQ(s.mutants.size(), 4u);
  ASSERT_EQ(t.mutants.size(), 4u);
  EXPECT_EQ(s.draws, t.draws);
  EXPECT_EQ(s.rejected, s.draws - 4);
  EXPECT_GT(s.rejected, 0);  // some draws fail: which ones are kept matters
  EXPECT_EQ(s.model_fingerprint, model_fingerprint(m));
  EXPECT_EQ(s.filters_per_mutant, 3);  // round(0.005 x 688)

  // Check the rule draw by draw: accuracy > 0.9 x the original's, first passing ones kept.
  Tensor x = cifar_records(m, 60);
  MutantRunner check(m, *backend, 60);
  const std::vector<int> p0 = check.load(x.data(), 60);
  int64_t correct0 = 0;
  for (int64_t i = 0; i < 60; ++i) correct0 += p0[static_cast<size_t>(i)] == data->label(i);
  EXPECT_DOUBLE_EQ(s.original_accuracy, correct0 / 60.0);
  const MutantGenerator gen(m, options.op, options.gamma, options.seed);
  size_t kept = 0;
  for (int64_t d = 0; d < s.draws; ++d) {
    const std::vector<int> p = check.predict(resolve_mutant(m, gen.draw(d)));
    int64_t correct = 0;
    for (int64_t i = 0; i < 60; ++i) correct += p[static_cast<size_t>(i)] == data->label(i);
    const bool pass = correct > 0.9 * correct0;
    if (!pass) continue;
    ASSERT_LT(kept, 4u);
    EXPECT_EQ(s.mutants[kept].draw, d);
    EXPECT_EQ(t.mutants[kept].draw, d);
    EXPECT_EQ(s.mutants[kept].correct, correct);
    ++kept;
  }
  EXPECT_EQ(kept, 4u);
}

TEST(BuildMutantSet, GivesUpAfterMaxDraws) {
  Model m = resnet20();
  auto data = open_cifar_dataset(kCifar, m.preprocess, 50);
  MutantBuildOptions options;
  options.gamma = 1.0;  // every filter negated: nothing passes
  options.count = 3;
  options.max_draws = 5;
  auto backend = make_backend("cpu");
  MutantRunner runner(m, *backend, 50);
  try {
    build_mutant_set(m, runner, *data, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only 0 of 3 mutants passed acceptance"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in 5 draws"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace veto
