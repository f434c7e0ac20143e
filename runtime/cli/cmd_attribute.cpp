// veto attribute: layer conductance of every input at the chosen layers (the README gives
// the math), all layers from one fused pass per batch; writes the per-channel features,
// predictions, logits and convergence deltas, and optionally PNG pictures of the maps.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/cli/common.h"
#include "runtime/conductance.h"
#include "runtime/conductance_maps.h"
#include "runtime/distributed.h"
#include "runtime/error.h"
#include "runtime/io/npy.h"
#include "runtime/io/safetensors.h"

namespace veto::cli {
namespace {

// --baseline: "zeros", a number (every value), or a preprocessed .npy of the input's shape.
Tensor parse_baseline(const std::string& spec, const Model& model) {
  const Shape in = model.graph.node(0).shape;
  if (spec == "zeros") return Tensor();
  char* end = nullptr;
  const double v = std::strtod(spec.c_str(), &end);
  if (!spec.empty() && *end == '\0') {
    VETO_CHECK(std::isfinite(v), "--baseline: ", spec, " is not a finite number");
    return Tensor(in, static_cast<float>(v));
  }
  VETO_CHECK(ends_with(spec, ".npy"), "--baseline takes zeros, a number or a .npy file, got '", spec, "'");
  Tensor b = read_npy(spec);
  VETO_CHECK(b.numel() == in.numel(), spec, ": the baseline has shape ", b.shape().str(), ", the model's input is ",
             Shape(std::vector<int64_t>(in.dims.begin() + 1, in.dims.end())).str());
  return b;
}

}  // namespace

int cmd_attribute(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs = model_options();
  specs.back().default_value = "16";  // --batch: images per run of the engine
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"layers", OptionSpec::List, "L", "layer names (veto info lists them), or all: the block outputs", "all"});
  specs.push_back({"steps", OptionSpec::Value, "N", "integration steps", "10"});
  specs.push_back({"rule", OptionSpec::Value, "R",
                   "paper | riemann_left | riemann_right | riemann_middle | riemann_trapezoid | gausslegendre",
                   "paper"});
  specs.push_back({"baseline", OptionSpec::Value, "B", "zeros, a number, or a preprocessed .npy (C,H,W)", "zeros"});
  specs.push_back({"target", OptionSpec::Value, "T", "predicted | label | a class index", "predicted"});
  specs.push_back({"out", OptionSpec::Value, "FILE", "write the features: .safetensors (everything) or .npy (N, features)"});
  specs.push_back({"maps", OptionSpec::Value, "DIR", "write a PNG per image and layer: the input and its top channels' maps"});
  specs.push_back({"top", OptionSpec::Value, "K", "channels drawn per picture (--maps)", "4"});
  specs.push_back(max_memory_option("bound on the activations and gradients of one pass"));
  specs.push_back({"format", OptionSpec::Value, "F", "table | json", "table"});
  Args args("attribute", specs);
  if (!args.parse(words)) {
    std::cout << args.help(
        "--model M (--data CIFAR.bin | --input FILE...) [--layers L...|all] [options]",
        "Layer conductance of every input: per layer and channel, the integrated gradient of the\n"
        "target logit through the layer, averaged over H,W (paper rule: sum over k = 1..n of\n"
        "dF/dA(x_k) * (A(x_k) - A(x_k-1)), x_k = b + k/n (x - b)). Every step and every layer\n"
        "come from one forward + backward pass per chunk of images x steps.\n"
        "delta = sum of a layer's conductance map - (F(x) - F(baseline)): near 0 for a layer\n"
        "every path crosses (a block output), given enough steps.");
    return 0;
  }
  const std::string format = args.get_choice("format", "table", {"table", "json"});
  const Model model = open_model(args);
  const int64_t classes = static_cast<int64_t>(model.classes.size());

  ConductanceOptions options;
  options.layers = args.has("layers") ? args.list("layers") : std::vector<std::string>{"all"};
  if (options.layers == std::vector<std::string>{"all"}) {
    options.layers = model.graph.blocks();
    VETO_CHECK(!options.layers.empty(), "--layers all: this model (", model.arch,
               ") declares no block outputs; name the layers (veto info lists them)");
  }
  VETO_CHECK(!options.layers.empty(), "--layers: no layer given");
  for (const std::string& l : options.layers) model.graph.find(l);  // an unknown name lists the known ones
  options.rule = parse_conductance_rule(args.get("rule", "paper"));
  options.steps = static_cast<int>(args.get_int("steps", 10, 1, 100000));
  options.baseline = parse_baseline(args.get("baseline", "zeros"), model);
  options.max_memory = max_memory_of(args);
  const std::string maps_dir = args.get("maps");
  options.maps = !maps_dir.empty();
  const int top = static_cast<int>(args.get_int("top", 4, 1, 64));
  const std::string target_spec = args.get("target", "predicted");
  int fixed_target = -1;
  if (target_spec != "predicted" && target_spec != "label")
    fixed_target = static_cast<int>(args.get_int("target", 0, 0, classes - 1));
  const std::string out = args.get("out");
  if (!out.empty()) check_output_path("out", out, {".safetensors", ".npy"});
  const auto data = open_inputs(args, model);
  VETO_CHECK(target_spec != "label" || data->has_labels(), "--target label: the inputs carry no labels");
  if (options.maps) {
    std::error_code ec;
    std::filesystem::create_directories(maps_dir, ec);
    VETO_CHECK(!ec && std::filesystem::is_directory(maps_dir), "--maps: cannot create folder '", maps_dir, "'",
               ec ? ": " + ec.message() : "");
  }
  auto backend = open_backend(args);
  const int64_t batch = batch_size(args, 16);
  ConductanceEngine engine(model, *backend, options);

  const int64_t n = data->size(), layers = static_cast<int64_t>(options.layers.size());
  std::vector<int64_t> channels;
  int64_t features = 0;
  std::vector<Tensor> conductance;
  for (const std::string& l : options.layers) {
    channels.push_back(model.graph.node(model.graph.find(l)).shape[1]);
    features += channels.back();
    conductance.emplace_back(Shape{n, channels.back()});
  }
  Tensor logits(Shape{n, classes}), delta(Shape{n, layers});
  std::vector<int64_t> predictions(static_cast<size_t>(n)), targets(static_cast<size_t>(n)), labels(static_cast<size_t>(n));
  std::vector<float> inputs;
  double seconds = 0;
  // Under MPI each rank attributes a shard of whole batches; rank 0 gathers the rows.
  const Communicator& world = Communicator::world();
  const Range shard = shard_range(n, batch, world.rank(), world.size());
  for (int64_t start = shard.begin; start < shard.end; start += batch) {
    const int64_t count = std::min(batch, shard.end - start);
    inputs.resize(static_cast<size_t>(count * data->sample_size()));
    const auto t0 = std::chrono::steady_clock::now();
    data->load_batch(start, count, inputs.data());
    std::vector<int> want(static_cast<size_t>(count), fixed_target);
    for (int64_t i = 0; i < count; ++i) {
      labels[static_cast<size_t>(start + i)] = data->label(start + i);
      if (target_spec == "label") {
        const int label = data->label(start + i);
        VETO_CHECK(label >= 0, "--target label: input ", data->name(start + i), " has no label");
        want[static_cast<size_t>(i)] = label;
      }
    }
    const ConductanceResult r = engine.run(inputs.data(), count, want);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int64_t l = 0; l < layers; ++l) {
      const int64_t c = channels[static_cast<size_t>(l)];
      std::copy(r.conductance[l].data(), r.conductance[l].data() + count * c, conductance[l].data() + start * c);
      for (int64_t i = 0; i < count; ++i) delta[(start + i) * layers + l] = r.delta[i * layers + l];
    }
    std::copy(r.logits.data(), r.logits.data() + count * classes, logits.data() + start * classes);
    for (int64_t i = 0; i < count; ++i) {
      predictions[static_cast<size_t>(start + i)] = r.predictions[static_cast<size_t>(i)];
      targets[static_cast<size_t>(start + i)] = r.targets[static_cast<size_t>(i)];
    }
    if (options.maps)
      for (int64_t i = 0; i < count; ++i)
        for (int64_t l = 0; l < layers; ++l) {
          const Tensor& m = r.maps[l];
          const int64_t per = m.numel() / count;
          write_conductance_png(maps_dir + "/" + std::to_string(start + i) + "_" + options.layers[l] + ".png",
                                inputs.data() + i * data->sample_size(), model.preprocess, m.data() + i * per,
                                m.shape()[1], m.shape()[2], m.shape().rank() > 3 ? m.shape()[3] : 1,
                                r.conductance[l].data() + i * m.shape()[1], top);
        }
  }

  for (int64_t l = 0; l < layers; ++l) {
    gather_shard_rows(world, conductance[l].values(), shard, static_cast<size_t>(channels[static_cast<size_t>(l)]));
  }
  gather_shard_rows(world, logits.values(), shard, static_cast<size_t>(classes));
  gather_shard_rows(world, delta.values(), shard, static_cast<size_t>(layers));
  gather_shard_rows(world, predictions, shard, 1);
  gather_shard_rows(world, targets, shard, 1);
  gather_shard_rows(world, labels, shard, 1);
  seconds = world.allreduce_max(seconds);
  if (!world.root()) return 0;

  if (ends_with(out, ".npy")) {
    Tensor all(Shape{n, features});
    for (int64_t i = 0; i < n; ++i) {
      int64_t at = 0;
      for (int64_t l = 0; l < layers; ++l) {
        const int64_t c = channels[static_cast<size_t>(l)];
        std::copy(conductance[l].data() + i * c, conductance[l].data() + (i + 1) * c, all.data() + i * features + at);
        at += c;
      }
    }
    write_npy(out, all);
  } else if (!out.empty()) {
    SafetensorsFile file;
    file.metadata["format"] = "veto-conductance/1";
    file.metadata["model"] = model.source;
    file.metadata["arch"] = model.arch;
    file.metadata["model_fingerprint"] = model_fingerprint(model);
    if (model.metadata.count("source_sha256")) file.metadata["model_source_sha256"] = model.metadata.at("source_sha256");
    file.metadata["rule"] = conductance_rule_name(options.rule);
    file.metadata["steps"] = std::to_string(options.steps);
    file.metadata["baseline"] = args.get("baseline", "zeros");
    file.metadata["layers"] = nlohmann::json(options.layers).dump();
    file.metadata["reduction"] = "mean over H,W of the conductance map";
    for (int64_t l = 0; l < layers; ++l) file.tensors.push_back(make_f32("conductance." + options.layers[l], conductance[l]));
    file.tensors.push_back(make_f32("logits", logits));
    file.tensors.push_back(make_f32("delta", delta));
    file.tensors.push_back(make_i64("prediction", Shape{n}, predictions));
    file.tensors.push_back(make_i64("target", Shape{n}, targets));
    file.tensors.push_back(make_i64("label", Shape{n}, labels));
    write_safetensors(out, file);
  }

  const double images_per_second = static_cast<double>(n) / seconds;
  auto class_name = [&](int64_t c) { return c >= 0 ? model.classes[static_cast<size_t>(c)] : std::string("-"); };
  if (format == "json") {
    nlohmann::json j = {{"model", model.source},
                        {"arch", model.arch},
                        {"backend", backend->name()},
                        {"threads", threads_of(args)},
                        {"rule", conductance_rule_name(options.rule)},
                        {"steps", options.steps},
                        {"layers", options.layers},
                        {"features", features},
                        {"count", n},
                        {"chunk_rows", engine.chunk_rows()},
                        {"seconds", seconds},
                        {"images_per_second", images_per_second}};
    auto& rows = j["images"] = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> d(delta.data() + i * layers, delta.data() + (i + 1) * layers);
      rows.push_back({{"index", i},
                      {"name", data->name(i)},
                      {"label", labels[static_cast<size_t>(i)]},
                      {"predicted", predictions[static_cast<size_t>(i)]},
                      {"target", targets[static_cast<size_t>(i)]},
                      {"delta", d}});
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"index", "input", "label", "predicted", "target", "max |delta|"}};
  for (int64_t i = 0; i < n; ++i) {
    float worst = 0;
    for (int64_t l = 0; l < layers; ++l) worst = std::max(worst, std::fabs(delta[i * layers + l]));
    rows.push_back({std::to_string(i), data->name(i), class_name(labels[static_cast<size_t>(i)]),
                    class_name(predictions[static_cast<size_t>(i)]), class_name(targets[static_cast<size_t>(i)]),
                    fixed(worst, 4)});
  }
  std::cout << format_table(rows);
  std::cout << n << " images, " << layers << " layers (" << features << " features), rule "
            << conductance_rule_name(options.rule) << ", " << options.steps << " steps: " << fixed(images_per_second, 1)
            << " images/s (" << backend->name() << ", " << engine.chunk_rows() << " rows per pass)\n";
  return 0;
}

}  // namespace veto::cli
