// veto eval: accuracy, errors and the confusion matrix over a labeled dataset.
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/inference.h"

namespace veto::cli {

int cmd_eval(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  specs.push_back({"data", OptionSpec::Value, "FILE", "CIFAR-10 binary file"});
  specs.push_back({"limit", OptionSpec::Value, "N", "use only the first N records"});
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("eval", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--model M --data CIFAR.bin [options]",
                           "Accuracy, error count, confusion matrix and throughput on a labeled dataset.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const Model model = open_model(args);
  const auto data = open_cifar_dataset(args.require("data"), model.preprocess,
                                       args.get_int("limit", -1, 1, int64_t{1} << 40));
  VETO_CHECK(data->size() > 0, args.get("data"), ": holds no records");
  for (int64_t i = 0; i < data->size(); ++i)
    VETO_CHECK(data->label(i) < static_cast<int>(model.classes.size()), args.get("data"), ": record ", i,
               " has label ", data->label(i), " but the model has ", model.classes.size(), " classes");
  auto backend = open_backend(args);
  const int64_t batch = batch_size(args, 256);
  const InferenceResult r = run_inference(model, *backend, *data, batch);

  const size_t k = model.classes.size();
  std::vector<std::vector<int64_t>> confusion(k, std::vector<int64_t>(k, 0));
  int64_t correct = 0;
  const int64_t n = data->size();
  for (int64_t i = 0; i < n; ++i) {
    ++confusion[static_cast<size_t>(data->label(i))][static_cast<size_t>(r.predictions[i])];
    correct += data->label(i) == r.predictions[i];
  }
  const double accuracy = static_cast<double>(correct) / static_cast<double>(n);
  const double images_per_second = r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0.0;

  if (format == "json") {
    nlohmann::json out = {{"model", model.source},      {"arch", model.arch},
                          {"data", args.get("data")},   {"count", n},
                          {"correct", correct},         {"errors", n - correct},
                          {"accuracy", accuracy},       {"images_per_second", images_per_second},
                          {"backend", backend->name()}, {"threads", threads_of(args)},
                          {"batch", batch},             {"classes", model.classes},
                          {"confusion", confusion}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << format_table({{"model", model.source + " (" + model.arch + ")"},
                             {"data", args.get("data") + " (" + std::to_string(n) + " records)"},
                             {"accuracy", fixed(accuracy, 4) + " (" + std::to_string(correct) + "/" +
                                              std::to_string(n) + ")"},
                             {"errors", std::to_string(n - correct)},
                             {"images/s", fixed(images_per_second, 1) + " (" + backend->name() + ", batch " +
                                              std::to_string(batch) + ", " + std::to_string(threads_of(args)) +
                                              " threads; loading + forward)"}});
  std::cout << "\nconfusion matrix (rows: true class, columns: predicted)\n";
  std::vector<std::vector<std::string>> rows{{""}};
  for (size_t c = 0; c < k; ++c) rows[0].push_back(std::to_string(c));
  for (size_t t = 0; t < k; ++t) {
    rows.push_back({std::to_string(t) + " " + model.classes[t]});
    for (size_t p = 0; p < k; ++p) rows.back().push_back(std::to_string(confusion[t][p]));
  }
  std::cout << format_table(rows);
  return 0;
}

}  // namespace veto::cli
