// veto info: the model's metadata and every layer with its op, output shape and parameters.
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"

namespace veto::cli {

int cmd_info(const std::vector<std::string>& words) {
  Args args("info", {{"model", OptionSpec::Value, "M", "model file (.safetensors) or bundled name (resnet20)"},
                     {"format", OptionSpec::Value, "F", "table | json", "table"}});
  if (!args.parse(words)) {
    std::cout << args.help("--model M [--format table|json]",
                           "Shows a model's metadata and every layer: name, op, output shape, parameter count.\n"
                           "Layer names are what --layers selects in other commands.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const Model model = open_model(args);
  const Graph& g = model.graph;
  int64_t total_params = 0, total_macs = 0;
  nlohmann::json layers = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows{{"layer", "op", "output", "params"}};
  for (const Node& n : g.nodes()) {
    int64_t params = 0;
    for (const ParamSpec& p : param_specs(n.op, n.name)) params += p.shape.numel();
    total_params += params;
    total_macs += op_macs(n.op, n.shape);
    const Shape out(std::vector<int64_t>(n.shape.dims.begin() + 1, n.shape.dims.end()));
    rows.push_back({n.name, op_name(n.op), out.str(), std::to_string(params)});
    layers.push_back({{"name", n.name}, {"op", op_name(n.op)}, {"output", out.dims}, {"params", params}});
  }
  const Preprocess& p = model.preprocess;
  if (format == "json") {
    nlohmann::json out = {{"model", model.source},  {"arch", model.arch},           {"parameters", total_params},
                          {"macs", total_macs},     {"classes", model.classes},     {"layers", layers},
                          {"blocks", g.blocks()},   {"metadata", model.metadata},
                          {"fingerprint", model_fingerprint(model)}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  auto join = [](const std::vector<float>& v) {
    std::string s;
    for (float x : v) s += (s.empty() ? "" : ", ") + fixed(x, 4);
    return "[" + s + "]";
  };
  std::vector<std::vector<std::string>> head{
      {"model", model.source},
      {"arch", model.arch},
      {"parameters", std::to_string(total_params)},
      {"MACs/image", std::to_string(total_macs)},
      {"input", std::to_string(p.channels) + "x" + std::to_string(p.height) + "x" + std::to_string(p.width) +
                    ", resize " + p.resize + ", x = (pixel / " + fixed(p.divisor, 1) + " - " + join(p.mean) +
                    ") / " + join(p.std)},
      {"classes", std::to_string(model.classes.size())},
      {"fingerprint", model_fingerprint(model)}};
  std::string blocks;
  for (const std::string& b : g.blocks()) blocks += (blocks.empty() ? "" : " ") + b;
  head.push_back({"blocks", blocks.empty() ? "-" : blocks + " (--layers all)"});
  for (const char* key : {"provenance", "license"})
    if (model.metadata.count(key)) head.push_back({key, model.metadata.at(key)});
  std::cout << format_table(head) << "\n" << format_table(rows);
  return 0;
}

}  // namespace veto::cli
