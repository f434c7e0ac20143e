// veto features: everything the detector reads, for every input, in one pass over the data:
// logits, prediction, the softmax scores, layer conductance and LCR. Long runs checkpoint to
// OUT.partial after every batch (atomically) and a rerun with the same options resumes there.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/cli/common.h"
#include "runtime/distributed.h"
#include "runtime/error.h"
#include "runtime/features.h"
#include "runtime/io/atomic_file.h"
#include "runtime/softmax_scores.h"

namespace veto::cli {
namespace {

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

std::string summary_csv(const FeatureSet& f, const Dataset& data) {
  std::ostringstream os;
  os << "index,name,label,prediction,wrong";
  for (int s = 0; s < kSoftmaxScoreCount; ++s) os << "," << softmax_score_name(s);
  if (f.has_lcr) os << ",lcr";
  os << "\n";
  for (int64_t i = 0; i < f.count(); ++i) {
    const auto at = static_cast<size_t>(i);
    std::string name = data.name(i);
    for (char& c : name)
      if (c == ',' || c == '\n' || c == '"') c = '_';
    os << i << "," << name << "," << f.label[at] << "," << f.prediction[at] << ","
       << (f.label[at] < 0 ? std::string("") : std::to_string(f.label[at] != f.prediction[at] ? 1 : 0));
    for (int s = 0; s < kSoftmaxScoreCount; ++s) os << "," << f.softmax[at * kSoftmaxScoreCount + static_cast<size_t>(s)];
    if (f.has_lcr) os << "," << f.lcr[at];
    os << "\n";
  }
  return os.str();
}

}  // namespace

int cmd_features(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  specs.back().default_value = "64";
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"mutants", OptionSpec::Value, "FILE", "mutant file for LCR (veto mutants build); none: no LCR"});
  specs.push_back({"layers", OptionSpec::List, "L", "conductance layers, all (the block outputs) or none", "all"});
  specs.push_back({"steps", OptionSpec::Value, "N", "conductance integration steps", "10"});
  specs.push_back({"rule", OptionSpec::Value, "R", "conductance rule (see veto attribute)", "paper"});
  specs.push_back({"out", OptionSpec::Value, "FILE", "the features (.safetensors); OUT.partial holds a run's checkpoint"});
  specs.push_back({"csv", OptionSpec::Value, "FILE", "also a CSV summary: label, prediction, softmax scores, LCR"});
  specs.push_back(max_memory_option("bound on a pass's activations and gradients"));
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("features", specs);
  if (!args.parse(words)) {
    std::cout << args.help(
        "--model M [--mutants FILE] (--data CIFAR.bin | --input FILE...) [--layers L...|all|none] --out FILE",
        "Computes every input's prediction, logits, softmax scores (MSP, max-logit, margin, entropy,\n"
        "energy, DOCTOR), layer conductance (to the predicted class) and LCR into one file. After every\n"
        "batch the rows done so far are saved to OUT.partial; rerunning the same command resumes there.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const std::string out = args.require("out");
  check_output_path("out", out, {".safetensors"});
  const std::string csv = args.get("csv");
  if (!csv.empty()) check_output_path("csv", csv, {".csv"});
  Model model = open_model(args);

  FeatureOptions options;
  std::vector<std::string> layers = args.has("layers") ? args.list("layers") : std::vector<std::string>{"all"};
  if (layers == std::vector<std::string>{"all"}) layers = model.graph.blocks();
  if (layers == std::vector<std::string>{"none"}) layers.clear();
  for (const std::string& l : layers) model.graph.find(l);
  options.layers = layers;
  options.rule = parse_conductance_rule(args.get("rule", "paper"));
  options.steps = static_cast<int>(args.get_int("steps", 10, 1, 100000));
  options.max_memory = max_memory_of(args);

  MutantSet set;
  std::vector<WeightDelta> mutants;
  if (args.has("mutants")) {
    set = load_mutant_set(args.get("mutants"));
    mutants = resolve_mutant_set(model, set, args.get("mutants"));
    VETO_CHECK(!mutants.empty(), args.get("mutants"), ": holds no mutants");
  }
  VETO_CHECK(!options.layers.empty() || !mutants.empty(),
             "features: nothing to compute beyond the softmax scores; give --layers or --mutants");
  const auto data = open_inputs(args, model);
  auto backend = open_backend(args);
  const int64_t batch = mutant_batch(model, batch_size(args, 64), options.max_memory);
  FeatureExtractor extractor(model, *backend, mutants, options, batch);

  // What makes these features: a checkpoint made with anything else is not resumed.
  FeatureSet features = extractor.layout();
  auto meta = feature_provenance(model, mutants.empty() ? nullptr : &set, args.get("mutants"), options);
  meta["data"] = args.has("data") ? args.get("data") : nlohmann::json(args.list("input")).dump();
  meta["inputs"] = std::to_string(data->size());
  meta["batch"] = std::to_string(batch);

  // Under MPI each rank computes, and checkpoints, its own shard of whole batches.
  const Communicator& world = Communicator::world();
  const int64_t n = data->size();
  const Range shard = shard_range(n, batch, world.rank(), world.size());
  std::string partial = out + ".partial";
  auto checkpoint_meta = meta;
  if (world.size() > 1) {
    partial = out + ".rank" + std::to_string(world.rank()) + "-of-" + std::to_string(world.size()) + ".partial";
    checkpoint_meta["shard"] = std::to_string(shard.begin) + ":" + std::to_string(shard.end);
  }
  features.metadata = checkpoint_meta;
  // A checkpoint of a run with another rank count would be silently left behind.
  const std::filesystem::path out_path(out);
  const std::string stem = out_path.filename().string();
  const auto folder = out_path.has_parent_path() ? out_path.parent_path() : std::filesystem::path(".");
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    const bool checkpoint = name.size() > stem.size() && name.compare(0, stem.size(), stem) == 0 &&
                            ends_with(name, ".partial") &&
                            (name == stem + ".partial" || name.compare(stem.size(), 5, ".rank") == 0);
    const bool ours = world.size() == 1 ? name == stem + ".partial"
                                        : ends_with(name, "-of-" + std::to_string(world.size()) + ".partial");
    VETO_CHECK(!checkpoint || ours, entry.path().string(),
               " is the checkpoint of a run with another number of MPI ranks; rerun it that way, or delete it");
  }
  int64_t resumed = 0;
  if (std::filesystem::exists(partial)) {
    bool complete = false;
    FeatureSet previous = load_features(partial, &complete);
    for (const auto& [key, value] : checkpoint_meta) {
      const auto it = previous.metadata.find(key);
      VETO_CHECK(it != previous.metadata.end() && it->second == value, partial, " is the checkpoint of another run (",
                 key, ": '", it == previous.metadata.end() ? std::string("<missing>") : it->second, "' there, '",
                 value, "' now); delete it or rerun with the same options");
    }
    VETO_CHECK(previous.layers == features.layers && previous.has_lcr == features.has_lcr &&
                   previous.count() <= shard.size(),
               partial, " does not fit this run's layout; delete it");
    features = std::move(previous);
    resumed = features.count();
  }

  const bool tty = world.root() && ::isatty(STDERR_FILENO) != 0;
  std::vector<float> images;
  double seconds = 0;
  for (int64_t start = shard.begin + resumed; start < shard.end; start += batch) {
    const int64_t b = std::min(batch, shard.end - start);
    const auto t0 = std::chrono::steady_clock::now();
    images.resize(static_cast<size_t>(b * data->sample_size()));
    data->load_batch(start, b, images.data());
    std::vector<int> labels;
    for (int64_t i = 0; i < b; ++i) labels.push_back(data->label(start + i));
    features.append(extractor.run(images.data(), b, labels));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (start + b < shard.end) save_features(features, partial, false);
    if (tty) {
      const double rate = static_cast<double>(start + b - shard.begin - resumed) / seconds;
      std::cerr << "\rfeatures: " << start + b << "/" << shard.end << " inputs"
                << (world.size() > 1 ? " (rank 0 of " + std::to_string(world.size()) + ")" : "") << ", " << fixed(rate, 1)
                << " inputs/s, ETA " << duration(static_cast<double>(shard.end - start - b) / rate) << "   " << std::flush;
    }
  }
  if (tty) std::cerr << "\n";
  std::vector<int64_t> resumed_rows{resumed};
  world.allreduce_sum(resumed_rows);
  resumed = resumed_rows[0];
  seconds = world.allreduce_max(seconds);
  features = gather_features(world, features);
  if (world.root()) {
    features.metadata = meta;
    save_features(features, out, true);
    if (!csv.empty()) write_file_atomic(csv, summary_csv(features, *data));
  }
  // Checkpoints go once the output is in place (rank 0 fails the whole job before this).
  world.barrier();
  std::error_code ec;
  std::filesystem::remove(partial, ec);
  if (!world.root()) return 0;

  int64_t labelled = 0, wrong = 0;
  for (int64_t i = 0; i < n; ++i)
    if (features.label[static_cast<size_t>(i)] >= 0) {
      ++labelled;
      wrong += features.label[static_cast<size_t>(i)] != features.prediction[static_cast<size_t>(i)];
    }
  int64_t feature_count = kSoftmaxScoreCount + (features.has_lcr ? 1 : 0);
  for (int64_t c : features.channels) feature_count += c;
  const double rate = n > resumed && seconds > 0 ? static_cast<double>(n - resumed) / seconds : 0.0;
  if (format == "json") {
    std::cout << nlohmann::json({{"out", out},
                                 {"count", n},
                                 {"resumed_from", resumed},
                                 {"labelled", labelled},
                                 {"errors", wrong},
                                 {"layers", features.layers},
                                 {"features", feature_count},
                                 {"mutant_count", mutants.size()},
                                 {"batch", batch},
                                 {"seconds", seconds},
                                 {"images_per_second", rate}})
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << format_table({{"inputs", std::to_string(n) + (resumed ? " (resumed after " + std::to_string(resumed) + ")" : "")},
                             {"labelled", std::to_string(labelled) + " (" + std::to_string(wrong) + " wrong predictions)"},
                             {"features", std::to_string(feature_count) + " per input: " +
                                              std::to_string(kSoftmaxScoreCount) + " softmax scores, " +
                                              std::to_string(features.layers.size()) + " conductance layers" +
                                              (features.has_lcr ? ", LCR over " + std::to_string(mutants.size()) + " mutants" : "")},
                             {"throughput", fixed(rate, 2) + " inputs/s (" + backend->name() + ", batch " + std::to_string(batch) + ")"},
                             {"wrote", out + (csv.empty() ? "" : " and " + csv)}});
  return 0;
}

}  // namespace veto::cli
