// veto run: the whole job on one labelled dataset, as the other commands do it step by step:
// build (or reuse) the mutant set, compute every input's features, split, train and evaluate
// every detector, save the chosen detector, and write the report folder. Defaults run the
// bundled ResNet-20 on the bundled CIFAR-10 records in a few minutes on 2 cores.
#include <filesystem>
#include <iostream>

#include "runtime/cli/common.h"
#include "runtime/cli/report.h"
#include "runtime/error.h"
#include "runtime/mutation.h"

namespace veto::cli {

int cmd_run(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs{
      {"model", OptionSpec::Value, "M", "model file or bundled name", "resnet20"},
      {"data", OptionSpec::Value, "FILE", "labelled CIFAR-10 binary file", "data/cifar10_test_0-999.bin"},
      {"limit", OptionSpec::Value, "N", "use only the first N inputs"},
      {"out-dir", OptionSpec::Value, "DIR", "report folder (mutants, features, detector, report.*)", "veto-report"},
      {"mutants", OptionSpec::Value, "FILE", "use this mutant file instead of building DIR/mutants.safetensors"},
      {"op", OptionSpec::Value, "OP", "mutation operator when building: nai | gf | ws | ns", "nai"},
      {"gamma", OptionSpec::Value, "G", "share of conv filters per mutant when building", "0.01"},
      {"count", OptionSpec::Value, "N", "mutants to build", "50"},
      {"accept-limit", OptionSpec::Value, "N", "acceptance uses the first N inputs", "500"},
      {"layers", OptionSpec::List, "L", "conductance layers (all: the block outputs)", "all"},
      {"steps", OptionSpec::Value, "N", "conductance integration steps", "10"},
      {"detector", OptionSpec::Value, "KIND", "the detector saved for veto detect: logistic | mlp | two-stage", "two-stage"},
      {"groups", OptionSpec::Value, "G+G", "its feature groups", "conductance+lcr"},
      {"backend", OptionSpec::Value, "B", "cpu | cuda | auto | reference", "cpu"},
      {"precision", OptionSpec::Value, "P", "conv and dense math: fp32 | tf32 | bf16 (the last two: cuda)", "fp32"},
      {"threads", OptionSpec::Value, "T", "CPU threads (0 = one per core)", "0"},
      max_memory_option("bound on a pass's activations and gradients")};
  for (auto& s : detection_options()) specs.push_back(s);
  Args args("run", specs);
  if (!args.parse(words)) {
    std::cout << args.help("[--model resnet20] [--data FILE] [--out-dir veto-report] [options]",
                           "The whole job: mutants (built in DIR, or reused when DIR/mutants.safetensors was built for\n"
                           "this model), features of every input (veto features), every signal and detector on a\n"
                           "stratified split (veto evaluate), the chosen detector saved (veto train-detector), and the\n"
                           "report in DIR: report.md, report.json, roc.svg, risk_coverage.svg.");
    return 0;
  }
  read_detection_options(args);  // bad split/hidden/... values fail before any work
  open_backend(args);             // and so does a backend / precision this machine cannot run
  const std::string dir = args.get("out-dir", "veto-report");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VETO_CHECK(!ec && std::filesystem::is_directory(dir), "--out-dir: cannot create folder '", dir, "'",
             ec ? ": " + ec.message() : "");
  const std::string model = args.get("model", "resnet20"), data = args.get("data", "data/cifar10_test_0-999.bin");
  std::vector<std::string> common{"--model", model, "--backend", args.get("backend", "cpu"), "--precision",
                                  args.get("precision", "fp32"), "--threads", args.get("threads", "0"),
                                  "--max-memory", args.get("max-memory", "2048")};
  auto with = [&](std::vector<std::string> words, const std::vector<std::string>& more) {
    words.insert(words.end(), more.begin(), more.end());
    return words;
  };
  auto forward = [&](std::vector<std::string>& words, const char* name) {
    if (args.has(name)) words.insert(words.end(), {std::string("--") + name, args.get(name)});
  };

  std::string mutants = args.get("mutants");
  if (mutants.empty()) {
    mutants = dir + "/mutants.safetensors";
    bool reuse = false;
    if (std::filesystem::exists(mutants)) {
      const MutantSet set = load_mutant_set(mutants);
      reuse = set.model_fingerprint == model_fingerprint(load_model(model));
    }
    std::cout << "== mutants: " << (reuse ? "reusing " + mutants : "building " + mutants) << "\n";
    if (!reuse) {
      const int code = cmd_mutants(with({"build"}, with(common, {"--data", data, "--limit", args.get("accept-limit", "500"),
                                                                  "--op", args.get("op", "nai"), "--gamma", args.get("gamma", "0.01"),
                                                                  "--count", args.get("count", "50"), "--seed",
                                                                  args.get("seed", "0"), "--out", mutants})));
      if (code != 0) return code;
    }
  }

  const std::string features = dir + "/features.safetensors";
  std::cout << "\n== features: " << features << "\n";
  std::vector<std::string> f = with(common, {"--mutants", mutants, "--data", data, "--steps", args.get("steps", "10"),
                                             "--out", features, "--layers"});
  const std::vector<std::string> layers = args.has("layers") ? args.list("layers") : std::vector<std::string>{"all"};
  f.insert(f.end(), layers.begin(), layers.end());
  forward(f, "limit");
  if (int code = cmd_features(f)) return code;

  std::vector<std::string> detection;
  for (const char* name : {"split", "seed", "epochs", "hidden", "dropout"}) forward(detection, name);
  if (args.flag("no-class-weight")) detection.push_back("--no-class-weight");
  std::cout << "\n== detector: " << dir << "/detector.safetensors\n";
  if (int code = cmd_train_detector(with({"--features", features, "--detector", args.get("detector", "two-stage"), "--groups",
                                          args.get("groups", "conductance+lcr"), "--out", dir + "/detector.safetensors"},
                                         detection)))
    return code;
  std::cout << "\n== evaluation (" << dir << "/report.md, report.json, roc.svg, risk_coverage.svg)\n\n";
  return cmd_evaluate(with({"--features", features, "--report", dir}, detection));
}

}  // namespace veto::cli
