// veto mutants build | info: draw mutants of a model (whole conv filters changed by one
// operator), keep those that pass acceptance on labelled data, and write the set; or
// describe a mutant file.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/lcr.h"
#include "runtime/mutation.h"

namespace veto::cli {
namespace {

double accuracy_of(const MutantSet& set, const Mutant& m) {
  return set.acceptance_count > 0 ? static_cast<double>(m.correct) / static_cast<double>(set.acceptance_count) : 0.0;
}

nlohmann::json describe(const MutantSet& set) {
  double lo = 1, hi = 0, sum = 0;
  for (const Mutant& m : set.mutants) {
    const double a = accuracy_of(set, m);
    lo = std::min(lo, a);
    hi = std::max(hi, a);
    sum += a;
  }
  const double count = static_cast<double>(set.mutants.size());
  return {{"model", set.model_source},
          {"arch", set.arch},
          {"model_fingerprint", set.model_fingerprint},
          {"operator", mutation_operator_name(set.op)},
          {"gamma", set.gamma},
          {"seed", set.seed},
          {"scope", set.scope},
          {"filters_per_mutant", set.filters_per_mutant},
          {"count", set.mutants.size()},
          {"draws", set.draws},
          {"rejected", set.rejected},
          {"accept_ratio", set.accept_ratio},
          {"acceptance_data", set.acceptance_data},
          {"acceptance_count", set.acceptance_count},
          {"original_accuracy", set.original_accuracy},
          {"mutant_accuracy", {{"min", set.mutants.empty() ? 0 : lo}, {"mean", count > 0 ? sum / count : 0},
                               {"max", set.mutants.empty() ? 0 : hi}}}};
}

void print_summary(const nlohmann::json& j) {
  const auto& acc = j["mutant_accuracy"];
  std::cout << format_table(
      {{"model", j["model"].get<std::string>() + " (" + j["arch"].get<std::string>() + ", " +
                     j["model_fingerprint"].get<std::string>() + ")"},
       {"operator", j["operator"].get<std::string>() + ", gamma " + fixed(j["gamma"].get<double>(), 4) + " (" +
                        std::to_string(j["filters_per_mutant"].get<int64_t>()) + " filters per mutant), seed " +
                        std::to_string(j["seed"].get<uint64_t>())},
       {"scope", j["scope"].empty() ? std::string("every convolution") : j["scope"].dump()},
       {"mutants", std::to_string(j["count"].get<int64_t>()) + " accepted of " +
                       std::to_string(j["draws"].get<int64_t>()) + " draws (" +
                       std::to_string(j["rejected"].get<int64_t>()) + " rejected)"},
       {"acceptance", "accuracy > " + fixed(j["accept_ratio"].get<double>(), 3) + " x " +
                          fixed(j["original_accuracy"].get<double>(), 4) + " on " +
                          std::to_string(j["acceptance_count"].get<int64_t>()) + " inputs of " +
                          j["acceptance_data"].get<std::string>()},
       {"mutant accuracy", "min " + fixed(acc["min"].get<double>(), 4) + ", mean " + fixed(acc["mean"].get<double>(), 4) +
                               ", max " + fixed(acc["max"].get<double>(), 4)}});
}

int build(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"op", OptionSpec::Value, "OP", "mutation operator: nai | gf | ws | ns", "nai"});
  specs.push_back({"gamma", OptionSpec::Value, "G", "fraction of the scope's conv filters each mutant changes, in (0, 1]"});
  specs.push_back({"count", OptionSpec::Value, "N", "accepted mutants to keep", "100"});
  specs.push_back({"seed", OptionSpec::Value, "S", "random seed (same seed, same set)", "0"});
  specs.push_back({"accept-ratio", OptionSpec::Value, "R", "keep a mutant whose accuracy is > R x the model's", "0.9"});
  specs.push_back({"max-draws", OptionSpec::Value, "K", "give up after K draws (default 10 x --count)"});
  specs.push_back({"layers", OptionSpec::List, "L", "mutate only these conv layers (names or prefixes: layer3)"});
  specs.push_back({"out", OptionSpec::Value, "FILE", "the mutant file to write (.safetensors)"});
  specs.push_back(max_memory_option("bound on a batch's activations (lowers --batch)"));
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("mutants build", specs);
  if (!args.parse(words)) {
    std::cout << args.help(
        "--model M (--data CIFAR.bin | --input FILE...) --gamma G [--op nai|gf|ws|ns] [--count 100] [--seed S] --out FILE",
        "Draws mutants of the model (each changes round(gamma x filters) whole conv filters: NAI negates\n"
        "them, GF redraws them from the layer's per-position normal, WS shuffles each one's weights,\n"
        "NS permutes them within their layer) and keeps, in draw order, the first --count whose\n"
        "accuracy on the labelled inputs is > --accept-ratio x the model's. Same seed, same set.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const std::string out = args.require("out");
  check_output_path("out", out, {".safetensors"});
  Model model = open_model(args);
  MutantBuildOptions options;
  options.op = parse_mutation_operator(args.get("op", "nai"));
  VETO_CHECK(args.has("gamma"), "mutants build: --gamma is required (the paper: 0.01 for CIFAR ResNets, 0.002 for InceptionV3)");
  options.gamma = args.get_double("gamma", 0, 0, 1);
  VETO_CHECK(options.gamma > 0, "--gamma must be in (0, 1], got ", args.get("gamma"));
  options.count = args.get_int("count", 100, 1, 1000000);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  options.accept_ratio = args.get_double("accept-ratio", 0.9, 0, 1);
  options.max_draws = args.get_int("max-draws", 10 * options.count, 1, int64_t{1} << 40);
  if (args.has("layers")) options.scope = args.list("layers");
  const Communicator& world = Communicator::world();  // under MPI the ranks share each round's draws
  const bool tty = world.root() && ::isatty(STDERR_FILENO) != 0;
  options.progress = [tty, &options](int64_t accepted, int64_t drawn) {
    if (tty) std::cerr << "\rmutants: " << accepted << "/" << options.count << " accepted, " << drawn << " drawn" << std::flush;
  };
  const auto data = open_inputs(args, model);
  for (int64_t i = 0; i < data->size(); ++i)
    VETO_CHECK(data->label(i) < static_cast<int>(model.classes.size()), "input ", data->name(i), " has label ",
               data->label(i), " but the model has ", model.classes.size(), " classes");
  auto backend = open_backend(args);
  const size_t max_memory = max_memory_of(args);
  MutantRunner runner(model, *backend, mutant_batch(model, batch_size(args, 256), max_memory));
  const auto t0 = std::chrono::steady_clock::now();
  MutantSet set = build_mutant_set(model, runner, *data, options, world);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) std::cerr << "\n";
  set.acceptance_data = args.has("data") ? args.get("data") : "--input files";
  if (args.has("limit")) set.acceptance_data += " (first " + args.get("limit") + ")";
  if (!world.root()) return 0;
  save_mutant_set(set, out);

  nlohmann::json j = describe(set);
  j["out"] = out;
  j["seconds"] = seconds;
  j["backend"] = backend->name();
  j["batch"] = runner.batch();
  if (format == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  print_summary(j);
  std::cout << "wrote " << out << " in " << fixed(seconds, 1) << " s (" << backend->name() << ")\n";
  return 0;
}

int info(const std::vector<std::string>& words) {
  Args args("mutants info", {{"format", OptionSpec::Value, "F", "table | json", "table"}});
  // The file is the one positional word; everything else goes through the option parser.
  std::vector<std::string> options;
  std::string path;
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i].rfind("--", 0) == 0) {
      options.push_back(words[i]);
      if (words[i] == "--format" && i + 1 < words.size()) options.push_back(words[++i]);
    } else {
      VETO_CHECK(path.empty(), "mutants info takes one file, got '", path, "' and '", words[i], "'");
      path = words[i];
    }
  }
  if (!args.parse(options)) {
    std::cout << args.help("FILE [--format table|json]", "Describes a mutant file: how it was built and its mutants.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  VETO_CHECK(!path.empty(), "mutants info: give the mutant file");
  const MutantSet set = load_mutant_set(path);
  nlohmann::json j = describe(set);
  auto& rows = j["mutants"] = nlohmann::json::array();
  for (size_t m = 0; m < set.mutants.size(); ++m) {
    const Mutant& mu = set.mutants[m];
    std::vector<std::string> layers;
    for (const FilterEdit& e : mu.edits)
      if (layers.empty() || layers.back() != e.layer) layers.push_back(e.layer);
    rows.push_back({{"index", m}, {"draw", mu.draw}, {"filters", mu.edits.size()}, {"layers", layers},
                    {"accuracy", accuracy_of(set, mu)}});
  }
  if (format == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  print_summary(j);
  std::vector<std::vector<std::string>> table{{"mutant", "draw", "filters", "accuracy", "layers"}};
  for (const auto& r : rows) {
    std::string layers;
    for (const auto& l : r["layers"]) layers += (layers.empty() ? "" : " ") + l.get<std::string>();
    table.push_back({std::to_string(r["index"].get<size_t>()), std::to_string(r["draw"].get<int64_t>()),
                     std::to_string(r["filters"].get<size_t>()), fixed(r["accuracy"].get<double>(), 4), layers});
  }
  std::cout << "\n" << format_table(table);
  return 0;
}

}  // namespace

int cmd_mutants(const std::vector<std::string>& words) {
  const std::string usage =
      "usage: veto mutants build --model M (--data CIFAR.bin | --input FILE...) --gamma G [options] --out FILE\n"
      "       veto mutants info FILE [--format table|json]\n";
  VETO_CHECK(!words.empty(), "mutants: give a subcommand, build or info (veto mutants --help)");
  if (words[0] == "--help" || words[0] == "-h") {
    std::cout << usage;
    return 0;
  }
  const std::vector<std::string> rest(words.begin() + 1, words.end());
  if (words[0] == "build") return build(rest);
  if (words[0] == "info") return info(rest);
  fail("mutants: unknown subcommand '", words[0], "' (build, info)");
}

}  // namespace veto::cli
