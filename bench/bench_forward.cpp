// Whole-model forward throughput (images/s) on the CPU backend, at the batch sizes the
// issues track. Inputs are the bundled CIFAR-10 records, preprocessed once.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "bench/bench_models.h"
#include "runtime/dataset.h"
#include "runtime/executor.h"
#include "runtime/model.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;

void BM_Resnet20Forward(benchmark::State& state) {
  static const Model model = load_model(kRepo + "/models/resnet20.safetensors");
  const int64_t batch = state.range(0);
  auto data = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", model.preprocess, batch);
  std::vector<float> inputs(static_cast<size_t>(batch * data->sample_size()));
  data->load_batch(0, batch, inputs.data());
  auto backend = make_backend("cpu");
  backend->set_threads(static_cast<int>(state.range(1)));
  Plan plan(model, *backend, batch);
  for (auto _ : state) plan.forward(inputs.data());
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(state.range(1));
}
BENCHMARK(BM_Resnet20Forward)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 2})
    ->Args({32, 2})
    ->Args({256, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_InceptionV3Forward(benchmark::State& state) {
  static const Model model = random_inception_v3();
  const int64_t batch = state.range(0);
  std::vector<float> inputs(static_cast<size_t>(batch * 3 * 299 * 299));
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (float& v : inputs) v = u(rng);
  auto backend = make_backend("cpu");
  backend->set_threads(static_cast<int>(state.range(1)));
  Plan plan(model, *backend, batch);
  for (auto _ : state) plan.forward(inputs.data());
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["arena_MiB"] = static_cast<double>(plan.arena_bytes()) / (1 << 20);
}
BENCHMARK(BM_InceptionV3Forward)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 2})
    ->Args({8, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace veto
