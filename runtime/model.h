// A model = graph (built in C++ by models/ from the "arch" metadata) + parameters bound by
// name from a safetensors file + metadata (preprocessing, class names, provenance).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/graph.h"
#include "runtime/params.h"

namespace veto {

// How an 8-bit RGB image becomes the network input (C,H,W) float tensor:
// resize (see `resize`), then x = (pixel / divisor - mean[c]) / std[c].
struct Preprocess {
  int64_t channels = 3, height = 32, width = 32;
  // "none": the image must already be height x width.
  // "stretch": resize to height x width ignoring the aspect ratio (Keras load_img).
  // "shorter_crop": resize the shorter side to resize_shorter, center-crop height x width.
  std::string resize = "none";
  std::string interpolation = "bilinear";  // or "nearest"
  int64_t resize_shorter = 0;
  float divisor = 255.0f;
  std::vector<float> mean{0.0f, 0.0f, 0.0f};
  std::vector<float> std{1.0f, 1.0f, 1.0f};
};

struct Model {
  std::string arch;
  std::string source;  // the file it was loaded from
  Graph graph;
  ParamArena params;
  Preprocess preprocess;
  std::vector<std::string> classes;
  std::map<std::string, std::string> metadata;  // everything in the file's __metadata__
};

// Loads a model file (a path) or a bundled model (a name such as "resnet20").
Model load_model(const std::string& path_or_name);

// Writes `model` as a veto model file (safetensors), atomically.
void save_model(const Model& model, const std::string& path);

// The bundled model names and where bundled models are searched.
std::vector<std::string> bundled_model_names();

}  // namespace veto
