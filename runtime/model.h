// A model = graph (built in C++ by models/ from the "arch" metadata) + parameters bound by
// name from a safetensors file + metadata (preprocessing, class names, provenance).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/graph.h"
#include "runtime/params.h"
#include "runtime/preprocess.h"

namespace veto {

struct SafetensorsFile;

struct Model {
  std::string arch;
  std::string source;  // the file it was loaded from
  Graph graph;
  ParamArena params;
  Preprocess preprocess;
  std::vector<std::string> classes;
  std::map<std::string, std::string> metadata;  // everything in the file's __metadata__
};

// Loads a model file (a path; an .onnx file is imported with the default options) or a
// bundled model (a name such as "resnet20").
Model load_model(const std::string& path_or_name);
// The strict validation load_model does, on an already parsed file; `source` names it in
// error messages and becomes Model::source (tests, fuzzing).
Model parse_model(const SafetensorsFile& file, const std::string& source);

// The preprocessing as model files store it (metadata "preprocess", JSON), and back; the
// parser checks every field and names `source` in its errors.
Preprocess preprocess_from_json(const std::string& text, const std::string& source);
std::string preprocess_to_json(const Preprocess& preprocess);

// Writes `model` as a veto model file (safetensors), atomically.
void save_model(const Model& model, const std::string& path);

// What a model computes, as "fnv1a64:<16 hex digits>": FNV-1a (64-bit) over its arch, the
// metadata that shapes the graph (variant, transform_input, width_divisor; a written-out
// graph's whole text), every node's
// name, op and shape, the preprocessing, the class names, and every parameter's name, shape
// and values. Files derived from a model (conductance features, ...) record it, so one made
// for another model or other weights is recognized; provenance and licence text do not
// count. It guards against mixing up files, not against forgery (not a cryptographic hash).
std::string model_fingerprint(const Model& model);

// The bundled model names and where bundled models are searched.
std::vector<std::string> bundled_model_names();

}  // namespace veto
