// veto detect: for every input, the model's prediction, the detector's score and the
// decision: accept the prediction, or cancel it (hand the input to a person or another
// system). Features are computed exactly as veto features made the detector's training ones.
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/cli/common.h"
#include "runtime/detection.h"
#include "runtime/distributed.h"
#include "runtime/error.h"
#include "runtime/io/json.h"

namespace veto::cli {

int cmd_detect(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  specs.back().default_value = "64";
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"detector", OptionSpec::Value, "FILE", "detector file (veto train-detector or veto run)"});
  specs.push_back({"mutants", OptionSpec::Value, "FILE", "the mutant file the detector's features used (when it reads LCR)"});
  specs.push_back(max_memory_option("bound on a pass's activations and gradients"));
  specs.push_back({"format", OptionSpec::Value, "F", "csv | json", "csv"});
  Args args("detect", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--model M --detector FILE [--mutants FILE] (--input FILE... | --data CIFAR.bin)",
                           "Per input: the prediction, the detector's score (probability the prediction is wrong) and\n"
                           "the decision: cancel when the score is >= the detector's threshold, else accept.");
    return 0;
  }
  const std::string format = args.get_choice("format", "csv", {"csv", "json"});
  const std::string detector_path = args.require("detector");
  const ErrorDetector detector = load_error_detector(detector_path);
  Model model = open_model(args);

  // Only what the detector reads is computed: conductance at the training features' layers,
  // LCR over the same mutant set.
  FeatureOptions options;
  const auto layers = parse_metadata_json(detector.provenance.count("layers") ? detector.provenance.at("layers") : "[]",
                                          "layers", detector_path);
  VETO_CHECK(layers.is_array(), detector_path, ": metadata 'layers' is not an array");
  if (detector.reads("conductance"))
    for (const auto& l : layers) {
      VETO_CHECK(l.is_string(), detector_path, ": metadata 'layers' holds a non-string");
      options.layers.push_back(l.get<std::string>());
      model.graph.find(options.layers.back());
    }
  options.rule = parse_conductance_rule(detector.provenance.count("rule") ? detector.provenance.at("rule") : "paper");
  const std::string steps = detector.provenance.count("steps") ? detector.provenance.at("steps") : "10";
  char* end = nullptr;
  options.steps = static_cast<int>(std::strtol(steps.c_str(), &end, 10));
  VETO_CHECK(*end == '\0' && options.steps >= 1 && options.steps <= 100000, detector_path, ": metadata 'steps' = '",
             steps, "' is not a step count");
  options.max_memory = max_memory_of(args);

  const bool needs_lcr = detector.reads("lcr");
  VETO_CHECK(!needs_lcr || args.has("mutants"), detector_path, " was trained with LCR features over the mutants of '",
             detector.provenance.count("mutants") ? detector.provenance.at("mutants") : "?", "': give --mutants FILE");
  MutantSet set;
  std::vector<WeightDelta> mutants;
  if (needs_lcr) {
    set = load_mutant_set(args.get("mutants"));
    mutants = resolve_mutant_set(model, set, args.get("mutants"));
  }
  const auto data = open_inputs(args, model);
  auto backend = open_backend(args);
  const int64_t batch = mutant_batch(model, batch_size(args, 64), options.max_memory);
  FeatureExtractor extractor(model, *backend, mutants, options, batch);
  FeatureSet features = extractor.layout();
  features.metadata = feature_provenance(model, needs_lcr ? &set : nullptr, args.get("mutants"), options);
  check_detector_fits(detector, features, detector_path, "these inputs' features");

  // Under MPI each rank computes a shard of whole batches; rank 0 gathers and decides.
  const Communicator& world = Communicator::world();
  const int64_t n = data->size();
  const Range shard = shard_range(n, batch, world.rank(), world.size());
  std::vector<float> images;
  for (int64_t start = shard.begin; start < shard.end; start += batch) {
    const int64_t b = std::min(batch, shard.end - start);
    images.resize(static_cast<size_t>(b * data->sample_size()));
    data->load_batch(start, b, images.data());
    std::vector<int> labels;
    for (int64_t i = 0; i < b; ++i) labels.push_back(data->label(start + i));
    features.append(extractor.run(images.data(), b, labels));
  }
  features = gather_features(world, features);
  if (!world.root()) return 0;
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  const std::vector<double> scores = detector.score(features, rows);

  auto class_name = [&](int64_t c) { return c >= 0 ? model.classes[static_cast<size_t>(c)] : std::string(); };
  if (format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      const auto at = static_cast<size_t>(i);
      out.push_back({{"index", i},
                     {"input", data->name(i)},
                     {"prediction", features.prediction[at]},
                     {"class", class_name(features.prediction[at])},
                     {"label", features.label[at]},
                     {"score", scores[at]},
                     {"decision", scores[at] >= detector.threshold ? "cancel" : "accept"}});
    }
    std::cout << nlohmann::json({{"detector", detector_path}, {"threshold", detector.threshold}, {"inputs", out}}).dump(2)
              << "\n";
    return 0;
  }
  std::ostringstream os;
  os << "index,input,prediction,class,label,score,decision\n";
  for (int64_t i = 0; i < n; ++i) {
    const auto at = static_cast<size_t>(i);
    std::string name = data->name(i);
    for (char& c : name)
      if (c == ',' || c == '\n' || c == '"') c = '_';
    char score[32];
    std::snprintf(score, sizeof score, "%.9g", scores[at]);
    os << i << "," << name << "," << features.prediction[at] << "," << class_name(features.prediction[at]) << ","
       << features.label[at] << "," << score << "," << (scores[at] >= detector.threshold ? "cancel" : "accept") << "\n";
  }
  std::cout << os.str();
  return 0;
}

}  // namespace veto::cli
