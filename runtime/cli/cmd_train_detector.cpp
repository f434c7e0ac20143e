// veto train-detector: one error detector over chosen feature groups, trained on the
// training part of the seeded split (the same split veto evaluate uses for the same seed),
// its threshold picked on the validation part, saved for veto detect.
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/cli/report.h"
#include "runtime/error.h"

namespace veto::cli {

int cmd_train_detector(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs{
      {"features", OptionSpec::Value, "FILE", "features file (veto features), labelled"},
      {"detector", OptionSpec::Value, "KIND", "logistic | mlp | two-stage (MLP on conductance, then MLP on [LCR, its score])", "two-stage"},
      {"groups", OptionSpec::Value, "G+G", "feature groups: msp, doctor, ..., softmax, lcr, conductance, conductance.<layer>", "conductance+lcr"},
      {"out", OptionSpec::Value, "FILE", "the detector file (.safetensors)"},
      {"format", OptionSpec::Value, "F", "table | json", "table"}};
  for (auto& s : detection_options()) specs.push_back(s);
  Args args("train-detector", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--features FILE [--detector two-stage] [--groups conductance+lcr] --out FILE",
                           "Trains one error detector on the training part of the split, picks its threshold (Youden's J)\n"
                           "on the validation part, reports its test metrics and saves it for veto detect.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const std::string out = args.require("out");
  check_output_path("out", out, {".safetensors"});
  const std::string kind = args.get_choice("detector", "two-stage", {"logistic", "mlp", "two-stage"});
  const std::vector<std::string> groups = parse_groups(args.get("groups", "conductance+lcr"));
  const EvaluationOptions options = read_detection_options(args);
  const std::string path = args.require("features");
  const FeatureSet f = load_features(path);
  const std::vector<bool> wrong = wrong_predictions(f);
  const Split split = stratified_split(wrong, options.train_share, options.validation_share, options.seed);
  ErrorDetector d = train_error_detector(f, kind, groups, split, options.config);
  for (const char* key : {"model", "arch", "model_fingerprint", "mutants", "mutants_fingerprint", "mutant_count", "rule",
                          "steps", "classes"})
    if (f.metadata.count(key)) d.provenance[key] = f.metadata.at(key);
  d.provenance["layers"] = nlohmann::json(f.layers).dump();
  d.provenance["features"] = path;
  save_error_detector(d, out);

  std::vector<int64_t> all(static_cast<size_t>(f.count()));
  for (int64_t i = 0; i < f.count(); ++i) all[static_cast<size_t>(i)] = i;
  const SignalReport r = report_signal(args.get("groups", "conductance+lcr"), kind, d.score(f, all), wrong, split, options.seed);
  if (format == "json") {
    std::cout << nlohmann::json({{"out", out},
                                 {"detector", kind},
                                 {"groups", groups},
                                 {"threshold", d.threshold},
                                 {"split", {split.train.size(), split.validation.size(), split.test.size()}},
                                 {"test_auroc", r.auroc},
                                 {"test_auroc_ci95", {r.auroc_ci.low, r.auroc_ci.high}},
                                 {"test_accepted_accuracy", r.accepted_accuracy},
                                 {"test_cancelled", r.cancelled}})
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << format_table({{"detector", kind + " over " + args.get("groups", "conductance+lcr")},
                             {"split", std::to_string(split.train.size()) + " / " + std::to_string(split.validation.size()) +
                                           " / " + std::to_string(split.test.size()) + " (train / validation / test)"},
                             {"threshold", fixed(d.threshold, 4) + " (cancel when the score is >= it)"},
                             {"test AUROC", fixed(r.auroc, 4) + " [" + fixed(r.auroc_ci.low, 3) + ", " + fixed(r.auroc_ci.high, 3) + "]"},
                             {"test at threshold", "accepted accuracy " + fixed(r.accepted_accuracy, 4) + ", cancelled " +
                                                       fixed(r.cancelled, 3)},
                             {"wrote", out}});
  return 0;
}

}  // namespace veto::cli
