// veto lcr: the label change rate of every input under a mutant set (the share of mutants
// whose prediction differs from the model's), optionally with SPRT early stopping; with
// labels, how well it separates wrong predictions from right ones (AUROC).
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/io/safetensors.h"
#include "runtime/lcr.h"
#include "runtime/metrics.h"
#include "runtime/mutation.h"

namespace veto::cli {

int cmd_lcr(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  specs.back().default_value = "64";  // --batch: images per original forward
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"mutants", OptionSpec::Value, "FILE", "mutant file (veto mutants build) made for this model"});
  specs.push_back({"out", OptionSpec::Value, "FILE", "write per-input results (.safetensors)"});
  specs.push_back({"sprt", OptionSpec::Flag, "", "stop each input's mutants at the SPRT's decision (Wang et al.)"});
  specs.push_back({"sprt-threshold", OptionSpec::Value, "Z", "SPRT threshold zeta on the LCR (p0/p1 = 0.9/1.1 zeta)", "0.1"});
  specs.push_back({"naive", OptionSpec::Flag, "", "copy the model per mutant and run it whole (the baseline; same results)"});
  specs.push_back(max_memory_option("bound on a batch's activations (lowers --batch)"));
  specs.push_back({"mutant-shards", OptionSpec::Value, "M",
                   "under MPI: ranks that share one shard of the inputs, each running part of the mutants", "1"});
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("lcr", specs);
  if (!args.parse(words)) {
    std::cout << args.help(
        "--model M --mutants FILE (--data CIFAR.bin | --input FILE...) [--out lcr.safetensors] [--sprt] [--naive]",
        "Label change rate: LCR(x) = #{mutants m : argmax F_m(x) != argmax F(x)} / #mutants. Per batch of\n"
        "inputs the model runs once; each mutant is applied to the live weights as a sparse delta, only\n"
        "the layers downstream of its changed filters run again, and the delta is reverted.\n"
        "With labels, the AUROC of LCR for telling wrong predictions from right ones.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const std::string out = args.get("out");
  if (!out.empty()) check_output_path("out", out, {".safetensors"});
  LcrOptions options;
  options.sprt = args.flag("sprt");
  options.sprt_threshold = args.get_double("sprt-threshold", 0.1, 0, 1);
  if (options.sprt) Sprt check(options.sprt_threshold);  // a bad threshold fails before any work
  Model model = open_model(args);
  const std::string mutants_path = args.require("mutants");
  const MutantSet set = load_mutant_set(mutants_path);
  const std::vector<WeightDelta> deltas = resolve_mutant_set(model, set, mutants_path);
  VETO_CHECK(!deltas.empty(), mutants_path, ": holds no mutants");
  const auto data = open_inputs(args, model);
  auto backend = open_backend(args);
  const bool naive = args.flag("naive");
  const size_t max_memory = max_memory_of(args);
  MutantRunner runner(model, *backend, mutant_batch(model, batch_size(args, 64), max_memory), naive);
  const Communicator& world = Communicator::world();
  const int mutant_shards = static_cast<int>(args.get_int("mutant-shards", 1, 1, 1 << 20));
  const LcrResult r = compute_lcr_sharded(runner, *data, deltas, options, world, mutant_shards);
  if (!world.root()) return 0;  // rank 0 writes and prints the whole job's results

  const int64_t n = data->size(), count = static_cast<int64_t>(deltas.size());
  std::vector<int64_t> labels(static_cast<size_t>(n)), predictions(r.predictions.begin(), r.predictions.end());
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = data->label(i);
  if (!out.empty()) {
    SafetensorsFile file;
    file.metadata["format"] = "veto-lcr/1";
    file.metadata["model"] = model.source;
    file.metadata["arch"] = model.arch;
    file.metadata["model_fingerprint"] = model_fingerprint(model);
    file.metadata["mutants"] = mutants_path;
    file.metadata["operator"] = mutation_operator_name(set.op);
    file.metadata["gamma"] = nlohmann::json(set.gamma).dump();
    file.metadata["mutant_count"] = std::to_string(count);
    file.metadata["sprt"] = options.sprt ? nlohmann::json(options.sprt_threshold).dump() : "off";
    Tensor lcr(Shape{n});
    for (int64_t i = 0; i < n; ++i) lcr[i] = static_cast<float>(r.lcr(i));
    file.tensors.push_back(make_f32("lcr", lcr));
    file.tensors.push_back(make_i64("changes", Shape{n}, r.changes));
    file.tensors.push_back(make_i64("mutants_used", Shape{n}, r.used));
    file.tensors.push_back(make_i64("prediction", Shape{n}, predictions));
    file.tensors.push_back(make_i64("label", Shape{n}, labels));
    file.tensors.push_back(make_f32("logits", r.logits));
    file.tensors.push_back(make_i64("mutant_prediction", Shape{n, count},
                                    std::vector<int64_t>(r.mutant_predictions.begin(), r.mutant_predictions.end())));
    if (options.sprt)
      file.tensors.push_back(make_i64("sprt_decision", Shape{n}, std::vector<int64_t>(r.decisions.begin(), r.decisions.end())));
    write_safetensors(out, file);
  }

  // Separation of wrong from right predictions, where the inputs are labelled.
  nlohmann::json quality = nullptr;
  if (data->has_labels()) {
    std::vector<double> score;
    std::vector<bool> wrong;
    double sum_right = 0, sum_wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      score.push_back(r.lcr(i));
      wrong.push_back(labels[static_cast<size_t>(i)] != predictions[static_cast<size_t>(i)]);
      (wrong.back() ? sum_wrong : sum_right) += score.back();
    }
    const auto errors = static_cast<int64_t>(std::count(wrong.begin(), wrong.end(), true));
    quality = {{"accuracy", static_cast<double>(n - errors) / static_cast<double>(n)},
               {"errors", errors},
               {"mean_lcr_right", errors < n ? sum_right / static_cast<double>(n - errors) : 0.0},
               {"mean_lcr_wrong", errors > 0 ? sum_wrong / static_cast<double>(errors) : 0.0},
               {"auroc", (errors > 0 && errors < n) ? nlohmann::json(auroc(score, wrong)) : nlohmann::json(nullptr)}};
  }
  int64_t used = 0, suspicious = 0, stable = 0;
  for (int64_t i = 0; i < n; ++i) {
    used += r.used[static_cast<size_t>(i)];
    if (options.sprt) {
      suspicious += r.decisions[static_cast<size_t>(i)] == Sprt::Suspicious;
      stable += r.decisions[static_cast<size_t>(i)] == Sprt::Stable;
    }
  }
  const double images_per_second = static_cast<double>(n) / r.seconds;
  const double mutant_forwards_per_second = static_cast<double>(r.mutant_forwards) / r.seconds;
  auto class_name = [&](int64_t c) { return c >= 0 ? model.classes[static_cast<size_t>(c)] : std::string("-"); };

  if (format == "json") {
    nlohmann::json j = {{"model", model.source},
                        {"arch", model.arch},
                        {"mutants", mutants_path},
                        {"operator", mutation_operator_name(set.op)},
                        {"gamma", set.gamma},
                        {"mutant_count", count},
                        {"count", n},
                        {"path", naive ? "naive" : "fast"},
                        {"backend", backend->name()},
                        {"threads", threads_of(args)},
                        {"batch", runner.batch()},
                        {"seconds", r.seconds},
                        {"images_per_second", images_per_second},
                        {"mutant_forwards", r.mutant_forwards},
                        {"mutant_forwards_per_second", mutant_forwards_per_second},
                        {"mean_mutants_used", static_cast<double>(used) / static_cast<double>(n)},
                        {"detection", quality}};
    if (options.sprt) j["sprt"] = {{"threshold", options.sprt_threshold}, {"suspicious", suspicious}, {"stable", stable},
                                   {"undecided", n - suspicious - stable}};
    auto& rows = j["images"] = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::json row = {{"index", i},
                            {"name", data->name(i)},
                            {"label", labels[static_cast<size_t>(i)]},
                            {"predicted", predictions[static_cast<size_t>(i)]},
                            {"lcr", r.lcr(i)},
                            {"changes", r.changes[static_cast<size_t>(i)]},
                            {"mutants_used", r.used[static_cast<size_t>(i)]}};
      if (options.sprt) row["sprt_decision"] = r.decisions[static_cast<size_t>(i)];
      rows.push_back(row);
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  // Per-input rows for small runs; --out or --format json give them for any size.
  if (n <= 20) {
    std::vector<std::vector<std::string>> rows{{"index", "input", "label", "predicted", "LCR", "changes"}};
    if (options.sprt) rows[0].push_back("SPRT");
    for (int64_t i = 0; i < n; ++i) {
      rows.push_back({std::to_string(i), data->name(i), class_name(labels[static_cast<size_t>(i)]),
                      class_name(predictions[static_cast<size_t>(i)]), fixed(r.lcr(i), 3),
                      std::to_string(r.changes[static_cast<size_t>(i)]) + "/" + std::to_string(r.used[static_cast<size_t>(i)])});
      if (options.sprt) {
        const int d = r.decisions[static_cast<size_t>(i)];
        rows.back().push_back(d == Sprt::Suspicious ? "suspicious" : d == Sprt::Stable ? "stable" : "undecided");
      }
    }
    std::cout << format_table(rows) << "\n";
  }
  std::vector<std::vector<std::string>> summary{
      {"mutants", mutants_path + " (" + std::to_string(count) + " " + mutation_operator_name(set.op) + ", gamma " +
                      fixed(set.gamma, 4) + ")"},
      {"inputs", std::to_string(n)}};
  if (!quality.is_null()) {
    summary.push_back({"accuracy", fixed(quality["accuracy"].get<double>(), 4) + " (" +
                                       std::to_string(quality["errors"].get<int64_t>()) + " errors)"});
    summary.push_back({"mean LCR", "right " + fixed(quality["mean_lcr_right"].get<double>(), 4) + ", wrong " +
                                       fixed(quality["mean_lcr_wrong"].get<double>(), 4)});
    summary.push_back({"AUROC (LCR, wrong vs right)",
                       quality["auroc"].is_null() ? std::string("- (needs both right and wrong predictions)")
                                                  : fixed(quality["auroc"].get<double>(), 4)});
  }
  if (options.sprt)
    summary.push_back({"SPRT (threshold " + fixed(options.sprt_threshold, 3) + ")",
                       std::to_string(suspicious) + " suspicious, " + std::to_string(stable) + " stable, " +
                           std::to_string(n - suspicious - stable) + " undecided; " +
                           fixed(static_cast<double>(used) / static_cast<double>(n), 1) + " mutants per input"});
  summary.push_back({"throughput", fixed(images_per_second, 2) + " images/s, " + fixed(mutant_forwards_per_second, 1) +
                                       " mutant forwards/s (" + (naive ? "naive" : "fast") + " path, " +
                                       backend->name() + ", batch " + std::to_string(runner.batch()) + ")"});
  if (!out.empty()) summary.push_back({"wrote", out});
  std::cout << format_table(summary);
  return 0;
}

}  // namespace veto::cli
