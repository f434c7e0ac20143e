#include "runtime/graph.h"

#include "runtime/error.h"

namespace veto {

int Graph::add(const std::string& name, OpParams op, std::vector<int> inputs) {
  VETO_CHECK(!name.empty() && index_.count(name) == 0, "graph: duplicate or empty node name '", name, "'");
  std::vector<Shape> in_shapes;
  for (int i : inputs) {
    VETO_CHECK(i >= 0 && i < size(), "graph: node '", name, "' reads a node that does not exist yet");
    in_shapes.push_back(nodes_[static_cast<size_t>(i)].shape);
  }
  Node n{name, std::move(op), std::move(inputs), {}};
  n.shape = infer_shape(n.op, in_shapes, name);
  nodes_.push_back(std::move(n));
  index_[name] = size() - 1;
  return size() - 1;
}

void Graph::replace_op(int i, OpParams op) {
  VETO_CHECK(i >= 0 && i < size(), "graph: replace_op of a node that does not exist");
  Node& n = nodes_[static_cast<size_t>(i)];
  std::vector<Shape> in_shapes;
  for (int in : n.inputs) in_shapes.push_back(nodes_[static_cast<size_t>(in)].shape);
  const Shape shape = infer_shape(op, in_shapes, n.name);
  VETO_CHECK(shape == n.shape, "graph: replace_op would change the shape of '", n.name, "'");
  n.op = std::move(op);
}

int Graph::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return it->second;
  std::string known;
  for (const Node& n : nodes_) known += (known.empty() ? "" : ", ") + n.name;
  fail("unknown layer '", name, "'; this model's layers are: ", known);
}

void Graph::add_alias(const std::string& alias, const std::string& name) {
  const int i = find(name);
  VETO_CHECK(index_.count(alias) == 0, "graph: alias '", alias, "' is already a name");
  index_[alias] = i;
}

std::vector<ParamSpec> Graph::param_specs() const {
  std::vector<ParamSpec> all;
  for (const Node& n : nodes_) {
    auto specs = veto::param_specs(n.op, n.name);
    all.insert(all.end(), specs.begin(), specs.end());
  }
  return all;
}

void Graph::mark_block(int node) {
  VETO_CHECK(node >= 0 && node < size(), "graph: mark_block of a node that does not exist");
  blocks_.push_back(nodes_[static_cast<size_t>(node)].name);
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> c(nodes_.size());
  for (int i = 0; i < size(); ++i)
    for (int in : nodes_[static_cast<size_t>(i)].inputs) c[static_cast<size_t>(in)].push_back(i);
  return c;
}

}  // namespace veto
