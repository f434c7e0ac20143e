// Model builders: the graph of every architecture veto knows, by its "arch" name. Parameter
// names follow PyTorch module naming so weights bind by name (see models/README.md).
#pragma once

#include <string>
#include <vector>

#include "runtime/graph.h"

namespace veto {

// "resnet20|32|44|56": akamaster's CIFAR ResNets (BN eps 1e-5, option-A shortcuts).
Graph build_cifar_resnet(int depth);
// "keras_resnet20v1": the Keras example ResNet20 v1 (conv bias, TF "same" padding,
// 1x1 stride-2 projection shortcuts, BN eps 1e-3, 8x8 average pool head).
Graph build_keras_resnet20v1();

// Builds the graph for an "arch" metadata value; throws listing the known ones.
Graph build_graph(const std::string& arch);
std::vector<std::string> known_archs();

}  // namespace veto
