// A graph written out as JSON, for models whose graph is not one of the built-in
// architectures (arch "graph": models imported from ONNX). The text is stored in the model
// file's metadata under "graph":
//   {"nodes": [{"name": "...", "op": "conv2d", "inputs": ["..."], "params": {...}}, ...],
//    "blocks": ["..."]}
// with one entry per node in topological order; "params" holds the op's fields by their
// names in runtime/ops.h (per-axis fields of slice and pad as 3-element arrays).
#pragma once

#include <string>

#include "runtime/graph.h"

namespace veto {

std::string graph_to_json(const Graph& graph);
// Rebuilds the graph, checking every field (types, ranges, known ops, inputs that exist
// and come earlier, shapes that fit); throws veto::Error "metadata 'graph' ..." naming the
// node at fault.
Graph graph_from_json(const std::string& text);

}  // namespace veto
