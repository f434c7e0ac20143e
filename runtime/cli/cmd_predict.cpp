// veto predict: the class of every input, with its softmax confidence.
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernels/cpu/kernels.h"
#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/inference.h"
#include "runtime/io/npy.h"

namespace veto::cli {

int cmd_predict(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"format", OptionSpec::Value, "F", "table | json | csv", "table"});
  specs.push_back({"logits", OptionSpec::Value, "OUT.npy", "also write the logits (N,classes) as float32 .npy"});
  specs.push_back({"topk", OptionSpec::Value, "K", "also list the K most probable classes", "1"});
  Args args("predict", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--model M (--data CIFAR.bin | --input FILE...) [options]",
                           "Predicts the class of every input.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json", "csv"});
  const Model model = open_model(args);
  const int64_t topk = args.get_int("topk", 1, 1, static_cast<int64_t>(model.classes.size()));
  const auto data = open_inputs(args, model);
  auto backend = open_backend(args);
  const InferenceResult r = run_inference(model, *backend, *data, batch_size(args, 256));

  const int64_t n = data->size(), k = r.logits.shape()[1];
  Tensor probs(r.logits.shape());
  cpu::softmax_forward(n, k, r.logits.data(), probs.data());
  if (args.has("logits")) write_npy(args.get("logits"), r.logits);

  int64_t correct = 0;
  const bool labeled = data->has_labels();
  for (int64_t i = 0; i < n; ++i) correct += labeled && data->label(i) == r.predictions[i];
  auto class_name = [&](int c) { return c >= 0 ? model.classes[static_cast<size_t>(c)] : std::string("-"); };
  // The topk classes of row i, most probable first (lower index first on ties).
  auto top = [&](int64_t i) {
    std::vector<int> order(static_cast<size_t>(k));
    for (int c = 0; c < k; ++c) order[static_cast<size_t>(c)] = c;
    const float* p = probs.data() + i * k;
    std::partial_sort(order.begin(), order.begin() + topk, order.end(),
                      [p](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    order.resize(static_cast<size_t>(topk));
    return order;
  };
  auto top_text = [&](int64_t i, const char* sep, const char* between, int digits) {
    std::string s;
    for (int c : top(i))
      s += (s.empty() ? "" : sep) + class_name(c) + between + fixed(probs[i * k + c], digits);
    return s;
  };

  if (format == "json") {
    nlohmann::json out = {{"model", model.source}, {"count", n}};
    if (labeled) out["accuracy"] = static_cast<double>(correct) / static_cast<double>(n);
    auto& rows = out["predictions"] = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      const int p = r.predictions[i];
      nlohmann::json row = {{"index", i},          {"name", data->name(i)},  {"label", data->label(i)},
                            {"predicted", p},      {"class", class_name(p)}, {"confidence", probs[i * k + p]}};
      if (topk > 1) {
        auto& t = row["topk"] = nlohmann::json::array();
        for (int c : top(i)) t.push_back({{"index", c}, {"class", class_name(c)}, {"probability", probs[i * k + c]}});
      }
      rows.push_back(row);
    }
    std::cout << out.dump(2) << "\n";
  } else if (format == "csv") {
    std::cout << "index,name,label,predicted,class,confidence" << (topk > 1 ? ",topk" : "") << "\n";
    for (int64_t i = 0; i < n; ++i) {
      const int p = r.predictions[i];
      std::cout << i << ",\"" << data->name(i) << "\"," << data->label(i) << "," << p << "," << class_name(p) << ","
                << fixed(probs[i * k + p], 6);
      if (topk > 1) std::cout << ",\"" << top_text(i, ";", ":", 6) << "\"";
      std::cout << "\n";
    }
  } else {
    std::vector<std::vector<std::string>> rows{{"index", "input", "label", "predicted", "confidence"}};
    if (topk > 1) rows[0].push_back("top " + std::to_string(topk));
    for (int64_t i = 0; i < n; ++i) {
      const int p = r.predictions[i];
      rows.push_back({std::to_string(i), data->name(i), class_name(data->label(i)), class_name(p),
                      fixed(probs[i * k + p], 4)});
      if (topk > 1) rows.back().push_back(top_text(i, ", ", " ", 3));
    }
    std::cout << format_table(rows);
    if (labeled)
      std::cout << "accuracy: " << fixed(static_cast<double>(correct) / static_cast<double>(n), 4) << " (" << correct
                << "/" << n << ")\n";
  }
  return 0;
}

}  // namespace veto::cli
