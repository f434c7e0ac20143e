#include "runtime/model.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "models/builders.h"
#include "runtime/error.h"
#include "runtime/fingerprint.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"
#include "runtime/onnx_import.h"

namespace veto {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "veto-model/1";

// Where bundled models live: $VETO_MODEL_PATH (colon-separated), then next to the binary
// (build/models), then an installed share folder.
std::vector<fs::path> model_search_path() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("VETO_MODEL_PATH")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      const size_t end = s.find(':', start);
      const std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!part.empty()) dirs.emplace_back(part);
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path() / "models");
    dirs.push_back(exe.parent_path().parent_path() / "models");
    dirs.push_back(exe.parent_path().parent_path() / "share" / "veto" / "models");
  }
  return dirs;
}

std::string resolve_model_path(const std::string& path_or_name) {
  std::error_code ec;
  if (fs::is_regular_file(path_or_name, ec)) return path_or_name;
  const bool looks_like_name = path_or_name.find('/') == std::string::npos &&
                               path_or_name.find('.') == std::string::npos && !path_or_name.empty();
  if (looks_like_name)
    for (const fs::path& dir : model_search_path()) {
      const fs::path candidate = dir / (path_or_name + ".safetensors");
      if (fs::is_regular_file(candidate, ec)) return candidate.string();
    }
  if (fs::exists(path_or_name, ec)) fail(path_or_name, ": not a regular file");
  if (!looks_like_name) fail(path_or_name, ": no such model file");
  std::string names;
  for (const auto& n : bundled_model_names()) names += (names.empty() ? "" : ", ") + n;
  fail("unknown model '", path_or_name, "': not a file and not a bundled model (bundled: ",
       names.empty() ? "none found" : names, ")");
}

const std::string& required(const std::map<std::string, std::string>& meta, const std::string& key,
                            const std::string& source) {
  auto it = meta.find(key);
  VETO_CHECK(it != meta.end(), source, ": not a veto model file: metadata has no '", key, "'");
  return it->second;
}

nlohmann::json parse_json(const std::string& text, const std::string& what, const std::string& source) {
  return parse_metadata_json(text, what, source);
}

// An integer field. nlohmann converts a JSON float to int64 with a plain cast, undefined
// behaviour when the value is out of range (1e30), so such values are refused first.
int64_t integer_field(const nlohmann::json& value, const char* key, const std::string& source) {
  if (value.is_number_float()) {
    const double v = value.get<double>();
    VETO_CHECK(v >= -9.2e18 && v <= 9.2e18, source, ": metadata 'preprocess' is malformed: '", key,
               "' is out of range");
  }
  return value.get<int64_t>();
}

}  // namespace

Preprocess preprocess_from_json(const std::string& text, const std::string& source) {
  const nlohmann::json j = parse_json(text, "preprocess", source);
  Preprocess p;
  try {
    p.channels = integer_field(j.at("channels"), "channels", source);
    p.height = integer_field(j.at("height"), "height", source);
    p.width = integer_field(j.at("width"), "width", source);
    p.resize = j.value("resize", std::string("none"));
    p.interpolation = j.value("interpolation", std::string("bilinear"));
    p.resize_shorter = j.contains("resize_shorter") ? integer_field(j.at("resize_shorter"), "resize_shorter", source)
                                                    : 0;
    p.divisor = j.at("divisor").get<float>();
    p.mean = j.at("mean").get<std::vector<float>>();
    p.std = j.at("std").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": metadata 'preprocess' is malformed: ", e.what());
  }
  VETO_CHECK(p.channels == 3 && p.height > 0 && p.width > 0 && p.height <= 4096 && p.width <= 4096, source,
             ": metadata 'preprocess' has an unsupported input size");
  VETO_CHECK(p.mean.size() == 3 && p.std.size() == 3, source, ": metadata 'preprocess' needs 3 means and 3 stds");
  VETO_CHECK(p.divisor > 0 && p.std[0] > 0 && p.std[1] > 0 && p.std[2] > 0, source,
             ": metadata 'preprocess' has a non-positive divisor or std");
  VETO_CHECK(p.resize == "none" || p.resize == "stretch" || p.resize == "shorter_crop", source,
             ": metadata 'preprocess' has unknown resize '", p.resize, "'");
  VETO_CHECK(p.interpolation == "nearest" || p.interpolation == "bilinear", source,
             ": metadata 'preprocess' has unknown interpolation '", p.interpolation, "'");
  return p;
}

std::string preprocess_to_json(const Preprocess& p) {
  return nlohmann::json{{"channels", p.channels}, {"height", p.height},
          {"width", p.width},       {"resize", p.resize},
          {"interpolation", p.interpolation}, {"resize_shorter", p.resize_shorter},
          {"divisor", p.divisor},   {"mean", p.mean},
          {"std", p.std}}
      .dump();
}

std::vector<std::string> bundled_model_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::path& dir : model_search_path()) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".safetensors") {
        const std::string n = entry.path().stem().string();
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Model parse_model(const SafetensorsFile& file, const std::string& source) {
  Model m;
  m.source = source;
  m.metadata = file.metadata;
  const std::string& format = required(file.metadata, "format", source);
  VETO_CHECK(format == kFormat, source, ": unsupported model format '", format, "' (expected ", kFormat, ")");
  m.arch = required(file.metadata, "arch", source);
  m.preprocess = preprocess_from_json(required(file.metadata, "preprocess", source), source);
  const nlohmann::json classes = parse_json(required(file.metadata, "classes", source), "classes", source);
  VETO_CHECK(classes.is_array(), source, ": metadata 'classes' must be a JSON array of names");
  for (const auto& c : classes) {
    VETO_CHECK(c.is_string(), source, ": metadata 'classes' must be a JSON array of names");
    m.classes.push_back(c.get<std::string>());
  }
  try {
    m.graph = build_graph(ArchSpec{m.arch, file.metadata, m.preprocess.height, m.preprocess.width,
                                   static_cast<int64_t>(m.classes.size())});
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
  const int64_t outputs = m.graph.node(m.graph.output()).shape.numel();
  VETO_CHECK(static_cast<int64_t>(m.classes.size()) == outputs, source, ": the class list has ", m.classes.size(),
             " names but the model's head has ", outputs, " outputs");

  // Every tensor is checked before the parameter arena exists: the arena's size comes from
  // the arch and the class count, so a small hostile file (inception_v3 with thousands of
  // class names) would otherwise cost hundreds of MB before its first missing tensor.
  const std::vector<ParamSpec> specs = m.graph.param_specs();
  for (const ParamSpec& spec : specs) {
    const SafeTensor* t = file.find(spec.name);
    VETO_CHECK(t, source, ": missing tensor '", spec.name, "' (", m.arch, " needs shape ", spec.shape.str(), ")");
    VETO_CHECK(t->dtype == "F32", source, ": tensor '", spec.name, "' has dtype ", t->dtype, ", expected F32");
    VETO_CHECK(t->shape == spec.shape, source, ": tensor '", spec.name, "' has shape ", t->shape.str(), ", expected ",
               spec.shape.str());
    const Tensor values = t->to_float();
    for (int64_t i = 0; i < values.numel(); ++i)
      VETO_CHECK(std::isfinite(values[i]), source, ": tensor '", spec.name, "' has a non-finite value (", values[i],
                 ") at flat index ", i);
  }
  m.params = ParamArena(specs);
  for (const ParamArena::View& v : m.params.views()) {
    const std::vector<uint8_t>& bytes = file.find(v.name)->bytes;  // checked above: F32 of this shape
    if (!bytes.empty()) std::memcpy(m.params.get(v.name), bytes.data(), bytes.size());
  }
  for (const SafeTensor& t : file.tensors)
    VETO_CHECK(m.params.contains(t.name), source, ": unexpected tensor '", t.name, "' for arch ", m.arch);
  return m;
}

Model load_model(const std::string& path_or_name) {
  const std::string path = resolve_model_path(path_or_name);
  if (fs::path(path).extension() == ".onnx") return import_onnx(path);
  return parse_model(read_safetensors(path), path);
}

void save_model(const Model& model, const std::string& path) {
  SafetensorsFile file;
  file.metadata = model.metadata;
  file.metadata["format"] = kFormat;
  file.metadata["arch"] = model.arch;
  file.metadata["preprocess"] = preprocess_to_json(model.preprocess);
  file.metadata["classes"] = nlohmann::json(model.classes).dump();
  for (const ParamArena::View& v : model.params.views()) {
    const float* p = model.params.get(v.name);
    file.tensors.push_back(make_f32(v.name, Tensor(v.shape, std::vector<float>(p, p + v.shape.numel()))));
  }
  write_safetensors(path, file);
}

std::string model_fingerprint(const Model& model) {
  Fnv1a64 h;
  h.text(model.arch);
  for (const char* key : {"variant", "transform_input", "width_divisor"}) {
    auto it = model.metadata.find(key);
    h.text(it == model.metadata.end() ? std::string() : it->second);
  }
  // Node names and op kinds do not say what a written-out graph computes (a pad's sizes,
  // a slice's strides); its text does. Native archs are hashed as before.
  if (model.arch == "graph") h.text(model.metadata.at("graph"));
  for (const Node& n : model.graph.nodes()) {
    h.text(n.name);
    h.text(op_name(n.op));
    h.shape(n.shape);
  }
  h.text(preprocess_to_json(model.preprocess));
  for (const std::string& c : model.classes) h.text(c);
  for (const ParamArena::View& v : model.params.views()) {
    h.text(v.name);
    h.shape(v.shape);
    h.bytes(model.params.data() + v.offset, static_cast<size_t>(v.shape.numel()) * sizeof(float));
  }
  return h.hex();
}

}  // namespace veto
