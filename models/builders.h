// Model builders: the graph of every architecture veto knows, by its "arch" name. Parameter
// names follow PyTorch module naming so weights bind by name (see models/README.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace veto {

// "resnet20|32|44|56": akamaster's CIFAR ResNets (BN eps 1e-5, option-A shortcuts).
Graph build_cifar_resnet(int depth);
// "keras_resnet20v1": the Keras example ResNet20 v1 (conv bias, TF "same" padding,
// 1x1 stride-2 projection shortcuts, BN eps 1e-3, 8x8 average pool head).
Graph build_keras_resnet20v1();

// "inception_v3": both variants; see models/inception_v3.cpp.
struct InceptionV3Config {
  std::string variant = "torchvision";  // or "keras"
  int64_t width_divisor = 1;            // reduced-width copies for tests: every width / divisor
  bool transform_input = false;         // torchvision only
  int64_t height = 299, width = 299;
  int64_t num_classes = 1000;
};
Graph build_inception_v3(const InceptionV3Config& config);

// What a model file says about the graph to build: its "arch", the other metadata
// (variant options), the input size and the number of classes.
struct ArchSpec {
  std::string arch;
  std::map<std::string, std::string> options;
  int64_t height = 0, width = 0;
  int64_t num_classes = 0;
};

// Builds the graph for a model file's architecture; throws naming what does not fit.
Graph build_graph(const ArchSpec& spec);
std::vector<std::string> known_archs();

}  // namespace veto
