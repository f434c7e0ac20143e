// Conductance throughput (images/s): every block output of ResNet-20 (9 layers) and of
// InceptionV3 (11 mixed layers) from one fused pass per chunk, paper rule, n = 10 steps.
// Side by side with PyTorch + Captum: bench/compare_captum.py.
#include <benchmark/benchmark.h>

#include <random>

#include "bench/bench_models.h"
#include "runtime/conductance.h"
#include "runtime/dataset.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;

void run_conductance(benchmark::State& state, const Model& model, const std::vector<float>& inputs, int64_t images) {
  auto backend = make_backend("cpu");
  backend->set_threads(static_cast<int>(state.range(1)));
  ConductanceOptions o;
  o.layers = model.graph.blocks();
  o.steps = 10;
  ConductanceEngine engine(model, *backend, o);
  engine.run(inputs.data(), images);  // builds the pass's plans
  for (auto _ : state) benchmark::DoNotOptimize(engine.run(inputs.data(), images));
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rows/pass"] = static_cast<double>(engine.chunk_rows());
}

void BM_Resnet20Conductance(benchmark::State& state) {
  static const Model model = load_model(kRepo + "/models/resnet20.safetensors");
  const int64_t images = state.range(0);
  auto data = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", model.preprocess, images);
  std::vector<float> inputs(static_cast<size_t>(images * data->sample_size()));
  data->load_batch(0, images, inputs.data());
  run_conductance(state, model, inputs, images);
}
BENCHMARK(BM_Resnet20Conductance)
    ->ArgNames({"images", "threads"})
    ->Args({64, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_InceptionV3Conductance(benchmark::State& state) {
  static const Model model = random_inception_v3();
  const int64_t images = state.range(0);
  std::vector<float> inputs(static_cast<size_t>(images * 3 * 299 * 299));
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (float& v : inputs) v = u(rng);
  run_conductance(state, model, inputs, images);
}
BENCHMARK(BM_InceptionV3Conductance)
    ->ArgNames({"images", "threads"})
    ->Args({2, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace veto
