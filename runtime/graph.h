// A model's computation: a topologically ordered DAG of named nodes. Node names are the
// layer names users select (`layer1.0`, `mixed3`); parameter tensors are named after their
// node (`layer1.0.conv1.weight`).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/ops.h"

namespace veto {

struct Node {
  std::string name;
  OpParams op;
  std::vector<int> inputs;  // indices of earlier nodes
  Shape shape;              // output shape at batch 1 (set by Graph::add)
};

class Graph {
 public:
  // Appends a node; inputs must already exist. Returns the node's index.
  int add(const std::string& name, OpParams op, std::vector<int> inputs = {});

  // Gives node i an op of the same output shape (an importer merging a following op into it).
  void replace_op(int i, OpParams op);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int i) const { return nodes_[static_cast<size_t>(i)]; }
  int size() const { return static_cast<int>(nodes_.size()); }
  // Index of the node called `name`; throws listing the valid names when there is none.
  int find(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The graph output: the last node.
  int output() const { return size() - 1; }
  // Other names a node answers to (torchvision's Mixed_5b for mixed0).
  void add_alias(const std::string& alias, const std::string& name);
  // Every parameter tensor of the graph, in node order.
  std::vector<ParamSpec> param_specs() const;
  // Indices of the nodes that read node i's output.
  std::vector<std::vector<int>> consumers() const;
  // Block outputs, in graph order: the layers attribution targets by default (`--layers
  // all`; every one cuts the graph: all paths from the input to the output cross it).
  void mark_block(int node);
  const std::vector<std::string>& blocks() const { return blocks_; }

 private:
  std::vector<Node> nodes_;
  std::map<std::string, int> index_;
  std::vector<std::string> blocks_;
};

}  // namespace veto
