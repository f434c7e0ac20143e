// Mutants (runtime/mutation.h): what each operator does to the drawn filters, the draw's
// size and reproducibility, the scope, the sparse delta's bit-exact revert, and the mutant
// file (round trip, every kind of corruption, a file built for another model).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "runtime/error.h"
#include "runtime/io/safetensors.h"
#include "runtime/model.h"
#include "runtime/mutation.h"

namespace veto {
namespace {

namespace fs = std::filesystem;
const std::string kRepo = VETO_REPO_DIR;
const std::string kData = VETO_TEST_DATA_DIR;

const Model& resnet20() {
  static const Model m = load_model(kRepo + "/models/resnet20.safetensors");
  return m;
}

const float* filter_of(const Model& m, const FilterEdit& e) {
  const auto& c = std::get<Conv2dOp>(m.graph.node(m.graph.find(e.layer)).op);
  return m.params.get(e.layer + ".weight") + e.filter * (c.in_channels / c.groups) * c.kernel_h * c.kernel_w;
}

template <class F>
void expect_error(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "no error; expected: " << message;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / ("veto_mutation_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

TEST(Mutation, NaiNegatesRoundGammaFiltersDrawnWithoutRepeats) {
  const Model& m = resnet20();
  const MutantGenerator gen(m, MutationOperator::NAI, 0.01, 7);
  EXPECT_EQ(gen.filters_in_scope(), 16 * 7 + 32 * 6 + 64 * 6);  // 688 conv filters
  EXPECT_EQ(gen.filters_per_mutant(), 7);                       // round(6.88)
  for (int64_t d = 0; d < 20; ++d) {
    const Mutant mu = gen.draw(d);
    ASSERT_EQ(mu.edits.size(), 7u);
    std::set<std::pair<std::string, int64_t>> seen;
    for (const FilterEdit& e : mu.edits) {
      EXPECT_TRUE(seen.insert({e.layer, e.filter}).second);
      const float* w = filter_of(m, e);
      for (size_t i = 0; i < e.values.size(); ++i) ASSERT_EQ(e.values[i], -w[i]);
    }
    // Sorted by graph order, then filter.
    for (size_t i = 1; i < mu.edits.size(); ++i) {
      const int a = m.graph.find(mu.edits[i - 1].layer), b = m.graph.find(mu.edits[i].layer);
      EXPECT_TRUE(a < b || (a == b && mu.edits[i - 1].filter < mu.edits[i].filter));
    }
  }
  EXPECT_EQ(MutantGenerator(m, MutationOperator::NAI, 1.0, 0).draw(0).edits.size(), 688u);
  EXPECT_EQ(MutantGenerator(m, MutationOperator::NAI, 1e-9, 0).filters_per_mutant(), 1);
}

TEST(Mutation, DrawsAreReproducibleAndIndependentOfOrder) {
  const Model& m = resnet20();
  const MutantGenerator a(m, MutationOperator::GF, 0.02, 42), b(m, MutationOperator::GF, 0.02, 42);
  const Mutant late = a.draw(9), early = a.draw(3);
  const Mutant early_b = b.draw(3), late_b = b.draw(9);
  auto same = [](const Mutant& x, const Mutant& y) {
    if (x.edits.size() != y.edits.size()) return false;
    for (size_t i = 0; i < x.edits.size(); ++i)
      if (x.edits[i].layer != y.edits[i].layer || x.edits[i].filter != y.edits[i].filter ||
          x.edits[i].values != y.edits[i].values)
        return false;
    return true;
  };
  EXPECT_TRUE(same(late, late_b));
  EXPECT_TRUE(same(early, early_b));
  EXPECT_FALSE(same(early, late));
  EXPECT_FALSE(same(a.draw(3), MutantGenerator(m, MutationOperator::GF, 0.02, 43).draw(3)));
}

TEST(Mutation, GaussianFuzzFollowsEachPositionsMeanAndSpread) {
  const Model& m = resnet20();
  // Every filter of one layer: z-scores of the new values against the layer's per-position
  // mean and standard deviation are standard normal.
  const std::string layer = "layer3.1.conv1";  // 64 filters of 64x3x3
  const MutantGenerator gen(m, MutationOperator::GF, 1.0, 3, {layer});
  const Mutant mu = gen.draw(0);
  ASSERT_EQ(mu.edits.size(), 64u);
  const float* w = m.params.get(layer + ".weight");
  const int64_t size = 64 * 9;
  double sum_z = 0, sum_z2 = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < size; ++i) {
    double mean = 0, sq = 0;
    for (int64_t f = 0; f < 64; ++f) mean += w[f * size + i] / 64.0;
    for (int64_t f = 0; f < 64; ++f) sq += (w[f * size + i] - mean) * (w[f * size + i] - mean) / 64.0;
    for (const FilterEdit& e : mu.edits) {
      const double z = (e.values[static_cast<size_t>(i)] - mean) / std::sqrt(sq);
      sum_z += z;
      sum_z2 += z * z;
      ++count;
    }
  }
  EXPECT_NEAR(sum_z / count, 0.0, 0.03);  // 36,864 samples: standard error 0.005
  EXPECT_NEAR(sum_z2 / count, 1.0, 0.05);
}

TEST(Mutation, WeightShufflePermutesInsideTheFilter) {
  const Model& m = resnet20();
  const Mutant mu = MutantGenerator(m, MutationOperator::WS, 0.01, 5).draw(0);
  ASSERT_EQ(mu.edits.size(), 7u);
  for (const FilterEdit& e : mu.edits) {
    const float* w = filter_of(m, e);
    std::vector<float> before(w, w + e.values.size()), after = e.values;
    EXPECT_NE(before, after);
    std::sort(before.begin(), before.end());
    std::sort(after.begin(), after.end());
    EXPECT_EQ(before, after);
  }
}

TEST(Mutation, NeuronSwitchPermutesDrawnFiltersWithinTheirLayer) {
  const Model& m = resnet20();
  const MutantGenerator gen(m, MutationOperator::NS, 0.05, 11);
  for (int64_t d = 0; d < 10; ++d) {
    const Mutant mu = gen.draw(d);
    std::map<std::string, std::vector<const FilterEdit*>> by_layer;
    for (const FilterEdit& e : mu.edits) by_layer[e.layer].push_back(&e);
    for (const auto& [layer, edits] : by_layer) {
      ASSERT_GE(edits.size(), 2u) << layer;  // a lone filter gets a partner
      // Each takes the weights of another drawn filter of the same layer; none keeps its own.
      std::multiset<std::vector<float>> given, taken;
      for (const FilterEdit* e : edits) {
        const float* w = filter_of(m, *e);
        given.insert(std::vector<float>(w, w + e->values.size()));
        taken.insert(e->values);
        EXPECT_NE(e->values, std::vector<float>(w, w + e->values.size())) << layer << " " << e->filter;
      }
      EXPECT_EQ(given, taken) << layer;
    }
  }
}

TEST(Mutation, ScopeTakesNamesAndPrefixes) {
  const Model& m = resnet20();
  const MutantGenerator gen(m, MutationOperator::NAI, 0.1, 1, {"layer3", "conv1"});
  EXPECT_EQ(gen.filters_in_scope(), 16 + 64 * 6);
  for (const FilterEdit& e : gen.draw(0).edits)
    EXPECT_TRUE(e.layer == "conv1" || e.layer.rfind("layer3.", 0) == 0) << e.layer;
  expect_error([&] { MutantGenerator(m, MutationOperator::NAI, 0.1, 1, {"layer9"}); }, "'layer9' matches no convolution");
  expect_error([&] { MutantGenerator(m, MutationOperator::NAI, 0.1, 1, {"linear"}); }, "'linear' matches no convolution");
}

TEST(Mutation, GammaAndOperatorAreChecked) {
  const Model& m = resnet20();
  for (double g : {0.0, -0.1, 1.5, std::nan("")})
    expect_error([&] { MutantGenerator(m, MutationOperator::NAI, g, 1); }, "gamma must be in (0, 1]");
  expect_error([] { parse_mutation_operator("flip"); }, "unknown mutation operator 'flip' (nai, gf, ws, ns)");
  for (const char* name : {"nai", "gf", "ws", "ns"}) EXPECT_EQ(mutation_operator_name(parse_mutation_operator(name)), name);
}

TEST(ScopedDelta, AppliesInPlaceAndRevertsBitExactly) {
  Model m = resnet20();
  const std::vector<float> before(m.params.data(), m.params.data() + m.params.size());
  const Mutant mu = MutantGenerator(m, MutationOperator::GF, 0.05, 2).draw(0);
  const WeightDelta delta = resolve_mutant(m, mu);
  EXPECT_EQ(delta.runs.size(), mu.edits.size());
  {
    const ScopedDelta applied(m.params, delta);
    for (const FilterEdit& e : mu.edits) {
      const float* w = filter_of(m, e);
      EXPECT_EQ(std::memcmp(w, e.values.data(), e.values.size() * sizeof(float)), 0);
    }
    int64_t changed = 0;
    for (int64_t i = 0; i < m.params.size(); ++i) changed += m.params.data()[i] != before[static_cast<size_t>(i)];
    EXPECT_GT(changed, 0);
    EXPECT_LE(changed, static_cast<int64_t>(delta.values.size()));
  }
  EXPECT_EQ(std::memcmp(m.params.data(), before.data(), before.size() * sizeof(float)), 0);
  // The changed convolutions, as graph nodes.
  std::set<int> convs;
  for (const FilterEdit& e : mu.edits) convs.insert(m.graph.find(e.layer));
  EXPECT_EQ(std::vector<int>(convs.begin(), convs.end()), delta.convs);
}

TEST(ResolveMutant, RejectsEditsThatDoNotFitTheModel) {
  const Model& m = resnet20();
  Mutant mu = MutantGenerator(m, MutationOperator::NAI, 0.01, 1).draw(0);
  auto with = [&](auto change) {
    Mutant c = mu;
    change(c);
    return c;
  };
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[0].layer = "nope"; })); }, "no layer 'nope'");
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[0].layer = "bn1"; })); }, "'bn1' is a batch_norm, not a convolution");
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[0].filter = 999; })); }, "filters, got filter 999");
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[0].values.pop_back(); })); }, "values, got");
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[1] = c.edits[0]; })); }, "is changed twice");
  expect_error([&] { resolve_mutant(m, with([](Mutant& c) { c.edits[0].values[3] = std::nanf(""); })); },
               "non-finite value at 3");
}

MutantSet small_set(const Model& m) {
  MutantSet s;
  s.model_fingerprint = model_fingerprint(m);
  s.model_source = m.source;
  s.arch = m.arch;
  s.op = MutationOperator::WS;
  s.gamma = 0.01;
  s.seed = 12345678901234ULL;
  s.scope = {"layer2", "layer3"};
  s.filters_per_mutant = 6;
  s.accept_ratio = 0.9;
  s.acceptance_data = "data/cifar10_test_0-999.bin (first 100)";
  s.acceptance_count = 100;
  s.original_accuracy = 0.93;
  s.draws = 5;
  s.rejected = 2;
  const MutantGenerator gen(m, s.op, s.gamma, s.seed, s.scope);
  for (int64_t d : {0, 2, 4}) {
    s.mutants.push_back(gen.draw(d));
    s.mutants.back().correct = 85 + d;
  }
  return s;
}

TEST(MutantFile, RoundTrips) {
  const Model& m = resnet20();
  const MutantSet s = small_set(m);
  const std::string path = scratch("set.safetensors").string();
  save_mutant_set(s, path);
  const MutantSet r = load_mutant_set(path);
  EXPECT_EQ(r.model_fingerprint, s.model_fingerprint);
  EXPECT_EQ(r.arch, "resnet20");
  EXPECT_EQ(r.op, MutationOperator::WS);
  EXPECT_EQ(r.gamma, 0.01);
  EXPECT_EQ(r.seed, s.seed);
  EXPECT_EQ(r.scope, s.scope);
  EXPECT_EQ(r.filters_per_mutant, 6);
  EXPECT_EQ(r.acceptance_data, s.acceptance_data);
  EXPECT_EQ(r.acceptance_count, 100);
  EXPECT_EQ(r.original_accuracy, 0.93);
  EXPECT_EQ(r.draws, 5);
  EXPECT_EQ(r.rejected, 2);
  ASSERT_EQ(r.mutants.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.mutants[i].draw, s.mutants[i].draw);
    EXPECT_EQ(r.mutants[i].correct, s.mutants[i].correct);
    ASSERT_EQ(r.mutants[i].edits.size(), s.mutants[i].edits.size());
    for (size_t e = 0; e < r.mutants[i].edits.size(); ++e) {
      EXPECT_EQ(r.mutants[i].edits[e].layer, s.mutants[i].edits[e].layer);
      EXPECT_EQ(r.mutants[i].edits[e].filter, s.mutants[i].edits[e].filter);
      EXPECT_EQ(r.mutants[i].edits[e].values, s.mutants[i].edits[e].values);
    }
  }
  EXPECT_EQ(resolve_mutant_set(m, r, path).size(), 3u);
}

TEST(MutantFile, RejectsCorruptFiles) {
  const Model& m = resnet20();
  const std::string good = scratch("good.safetensors").string(), bad = scratch("bad.safetensors").string();
  save_mutant_set(small_set(m), good);
  // Each case changes the parsed file, writes it and expects load_mutant_set's message.
  auto expect_load_error = [&](auto change, const std::string& message) {
    SafetensorsFile f = read_safetensors(good);
    change(f);
    write_safetensors(bad, f);
    expect_error([&] { load_mutant_set(bad); }, message);
  };
  auto tensor = [](SafetensorsFile& f, const std::string& name) -> SafeTensor& {
    for (SafeTensor& t : f.tensors)
      if (t.name == name) return t;
    throw Error("no " + name);
  };
  auto set_i64 = [&](SafetensorsFile& f, const std::string& name, size_t i, int64_t v) {
    std::memcpy(tensor(f, name).bytes.data() + 8 * i, &v, 8);
  };
  expect_load_error([](SafetensorsFile& f) { f.metadata["format"] = "veto-conductance/1"; }, "not a veto mutant file");
  expect_load_error([](SafetensorsFile& f) { f.metadata.erase("model_fingerprint"); }, "'model_fingerprint' is missing");
  expect_load_error([](SafetensorsFile& f) { f.metadata["gamma"] = "2"; }, "metadata 'gamma' = '2' is not a number in [0, 1]");
  expect_load_error([](SafetensorsFile& f) { f.metadata["count"] = "x"; }, "metadata 'count' = 'x' is not an integer");
  expect_load_error([](SafetensorsFile& f) { f.metadata["count"] = "4"; }, "tensor 'draw' has shape (3), expected (4)");
  expect_load_error([](SafetensorsFile& f) { f.metadata["layers"] = "[1"; }, "metadata 'layers' is not valid JSON");
  expect_load_error([](SafetensorsFile& f) { f.metadata["scope"] = std::string(100, '[') + std::string(100, ']'); },
                    "metadata 'scope' is nested deeper than 8 levels");
  expect_load_error([](SafetensorsFile& f) { f.metadata["operator"] = "zap"; }, "unknown mutation operator 'zap'");
  expect_load_error([&](SafetensorsFile& f) { set_i64(f, "edit_layer", 0, 99); }, "edit 0 names layer 99 of");
  expect_load_error([&](SafetensorsFile& f) { set_i64(f, "edit_offsets", 1, 100); }, "'edit_offsets' decreases at 1");
  expect_load_error([&](SafetensorsFile& f) { set_i64(f, "layer_filter_size", 0, 7); }, "tensor 'values' holds");
  expect_load_error([&](SafetensorsFile& f) { set_i64(f, "correct", 2, 101); }, "classifies 101 of 100");
  expect_load_error(
      [&](SafetensorsFile& f) {
        const float nan = std::nanf("");
        std::memcpy(tensor(f, "values").bytes.data() + 4 * 10, &nan, 4);
      },
      "tensor 'values' has a non-finite value at index 10");
  expect_load_error([&](SafetensorsFile& f) { tensor(f, "edit_filter").dtype = "F64"; }, "has dtype F64, expected I64");

  // Truncated: the safetensors reader names the file and the problem.
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  expect_error([&] { load_mutant_set(bad); }, bad);
  expect_error([&] { load_mutant_set(scratch("missing.safetensors").string()); }, "missing.safetensors");
}

TEST(MutantFile, RejectsAMutantSetBuiltForAnotherModel) {
  const Model& m = resnet20();
  const MutantSet s = small_set(m);
  // Another model altogether, and the same model with one weight changed.
  const Model keras = load_model(kData + "/keras_resnet20v1_random.safetensors");
  expect_error([&] { resolve_mutant_set(keras, s, "set.safetensors"); },
               "set.safetensors was built for model '" + m.source + "' (resnet20, " + s.model_fingerprint +
                   "), not for model '" + keras.source + "' (keras_resnet20v1, " + model_fingerprint(keras) + ")");
  Model tweaked = m;
  tweaked.params.get("linear.bias")[0] += 1e-3f;
  expect_error([&] { resolve_mutant_set(tweaked, s, "set.safetensors"); }, "was built for model");
}

}  // namespace
}  // namespace veto
