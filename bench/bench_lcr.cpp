// Label Change Rate throughput: one batch, the original forward (MutantRunner::load) plus
// every mutant (predict), fast path (sparse delta in place, only the graph downstream of
// the changed filters rerun) against the naive baseline (copy the model, mutate the copy,
// re-read every weight, full forward). NAI mutants drawn straight from MutantGenerator
// (draws 0..M-1, no acceptance: the cost of a mutant does not depend on passing it).
// Side by side with PyTorch (deepcopy + full forward per mutant): bench/compare_lcr.py.
#include <benchmark/benchmark.h>

#include <random>

#include "bench/bench_models.h"
#include "runtime/dataset.h"
#include "runtime/lcr.h"
#include "runtime/mutation.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;
constexpr uint64_t kSeed = 0;  // same mutants every run

Model& resnet20() {
  static Model model = load_model(kRepo + "/models/resnet20.safetensors");
  return model;
}

Model& inception_v3() {
  static Model model = random_inception_v3();
  return model;
}

// Args: images, mutants, naive (0/1), threads.
void run_lcr(benchmark::State& state, Model& model, double gamma, const std::vector<float>& inputs) {
  const int64_t images = state.range(0), count = state.range(1);
  auto backend = make_backend("cpu");
  backend->set_threads(static_cast<int>(state.range(3)));
  const MutantGenerator generator(model, MutationOperator::NAI, gamma, kSeed);
  std::vector<WeightDelta> deltas;
  for (int64_t d = 0; d < count; ++d) deltas.push_back(resolve_mutant(model, generator.draw(d)));
  MutantRunner runner(model, *backend, images, state.range(2) != 0);
  // One untimed pass builds the plan (and, on the fast path, its incremental state).
  runner.load(inputs.data(), images);
  for (const WeightDelta& d : deltas) runner.predict(d);

  int64_t changes = 0;
  for (auto _ : state) {
    changes = 0;
    const std::vector<int> original = runner.load(inputs.data(), images);
    for (const WeightDelta& d : deltas) {
      const std::vector<int> p = runner.predict(d);
      for (int64_t i = 0; i < images; ++i) changes += p[static_cast<size_t>(i)] != original[static_cast<size_t>(i)];
    }
  }
  state.counters["mutant_forwards_per_s"] =
      benchmark::Counter(static_cast<double>(images * count), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsIterationInvariantRate);
  // Mean LCR of the batch: shows the mutants change predictions, and that both paths agree.
  state.counters["mean_lcr"] = static_cast<double>(changes) / static_cast<double>(images * count);
  state.counters["filters/mutant"] = static_cast<double>(generator.filters_per_mutant());
}

void Lcr(benchmark::State& state, const char* net) {
  if (std::string(net) == "resnet20") {
    Model& model = resnet20();
    const int64_t images = state.range(0);
    auto data = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", model.preprocess, images);
    std::vector<float> inputs(static_cast<size_t>(images * data->sample_size()));
    data->load_batch(0, images, inputs.data());
    run_lcr(state, model, 0.01, inputs);
  } else {
    // Random weights: speed does not depend on the values; inputs as bench_conductance.cpp.
    Model& model = inception_v3();
    std::vector<float> inputs(static_cast<size_t>(state.range(0) * 3 * 299 * 299));
    std::mt19937 rng(8);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (float& v : inputs) v = u(rng);
    run_lcr(state, model, 0.002, inputs);
  }
}

BENCHMARK_CAPTURE(Lcr, resnet20, "resnet20")
    ->ArgNames({"images", "mutants", "naive", "threads"})
    ->Args({64, 20, 0, 2})
    ->Args({64, 20, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ~7 images/s per full forward here: batch 4, 16 mutants (where a mutant's earliest changed
// filter lies varies a lot, so few mutants give a noisy ratio), three timed iterations each.
BENCHMARK_CAPTURE(Lcr, inception_v3, "inception_v3")
    ->ArgNames({"images", "mutants", "naive", "threads"})
    ->Args({4, 16, 0, 2})
    ->Args({4, 16, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace veto
