// veto bench: forward-pass throughput on given inputs, for side-by-side comparisons
// (bench/compare_pytorch.py runs PyTorch and this on the same .npy batch in one run).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/executor.h"

namespace veto::cli {

int cmd_bench(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"repeat", OptionSpec::Value, "R", "timed forward passes", "10"});
  specs.push_back({"warmup", OptionSpec::Value, "W", "untimed forward passes first", "2"});
  specs.push_back({"graphs", OptionSpec::Value, "on|off",
                   "replay the forward as one recorded CUDA Graph (off: launch each kernel every pass)", "on"});
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("bench", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--model M (--data CIFAR.bin | --input FILE...) [options]",
                           "Times forward passes of one batch: the first --batch inputs (repeated when there\n"
                           "are fewer), already on the device (loading and the upload are not timed, as in\n"
                           "bench/torch_baseline.py). Reports images/s, the median and best time per batch,\n"
                           "and the activation arena size.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  PlanOptions options;
  options.record = args.get_choice("graphs", "on", {"on", "off"}) == "on";
  const Model model = open_model(args);
  const auto data = open_inputs(args, model);
  auto backend = open_backend(args);
  const int64_t batch = batch_size(args, 256);
  const int64_t repeat = args.get_int("repeat", 10, 1, 1000000), warmup = args.get_int("warmup", 2, 0, 1000000);

  std::vector<float> inputs(static_cast<size_t>(batch * data->sample_size()));
  for (int64_t start = 0; start < batch; start += data->size())
    data->load_batch(0, std::min(data->size(), batch - start), inputs.data() + start * data->sample_size());
  Plan plan(model, *backend, batch, options);
  backend->upload(inputs.data(), plan.input(), inputs.size());
  for (int64_t i = 0; i < warmup; ++i) plan.forward();
  backend->synchronize();
  std::vector<double> seconds;
  for (int64_t i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    plan.forward();
    backend->synchronize();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2], best = seconds.front();
  const double images_per_second = static_cast<double>(batch) / median;
  if (format == "json") {
    std::cout << nlohmann::json{{"model", model.source},
                                {"arch", model.arch},
                                {"backend", backend->name()},
                                {"threads", threads_of(args)},
                                {"batch", batch},
                                {"graphs", options.record},
                                {"repeat", repeat},
                                {"median_ms", median * 1e3},
                                {"best_ms", best * 1e3},
                                {"images_per_second", images_per_second},
                                {"arena_bytes", plan.arena_bytes()}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << format_table({{"model", model.source + " (" + model.arch + ")"},
                             {"backend", backend->name() + ", " + std::to_string(threads_of(args)) + " threads"},
                             {"batch", std::to_string(batch)},
                             {"median", fixed(median * 1e3, 2) + " ms/batch (best " + fixed(best * 1e3, 2) + ")"},
                             {"images/s", fixed(images_per_second, 1)},
                             {"arena", fixed(static_cast<double>(plan.arena_bytes()) / (1 << 20), 1) + " MiB"}});
  return 0;
}

}  // namespace veto::cli
