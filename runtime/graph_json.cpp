#include "runtime/graph_json.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/io/json.h"

namespace veto {
namespace {

using Json = nlohmann::json;

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// JSON has no infinity: clip bounds and pad values that are infinite are written as the
// strings "inf" / "-inf".
Json float_json(float v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

// Reads the fields of one node's "params", each checked for type and range. Errors name the
// node and the field.
class Fields {
 public:
  Fields(const Json& params, const std::string& node) : p_(params), node_(node) {
    VETO_CHECK(p_.is_object(), "node '", node_, "': 'params' must be an object");
  }

  // Every size in a graph is small; the bound keeps products of sizes far from overflow.
  int64_t integer(const char* key, int64_t lo = 0, int64_t hi = int64_t{1} << 20) const {
    return integer_value(at(key), key, lo, hi);
  }
  bool boolean(const char* key) const {
    const Json& v = at(key);
    check(v.is_boolean(), key, "must be true or false");
    return v.get<bool>();
  }
  float number(const char* key) const { return number_value(at(key), key); }
  std::vector<float> numbers(const char* key) const {
    const Json& v = at(key);
    check(v.is_array() && v.size() <= (size_t{1} << 20), key, "must be an array of numbers");
    std::vector<float> out;
    for (const Json& x : v) out.push_back(number_value(x, key));
    return out;
  }
  // A per-axis field of slice and pad: exactly three integers (C, H, W).
  void axes(const char* key, int64_t (&out)[3], int64_t lo, int64_t hi) const {
    const Json& v = at(key);
    check(v.is_array() && v.size() == 3, key, "must be an array of 3 integers");
    for (size_t a = 0; a < 3; ++a) out[a] = integer_value(v[a], key, lo, hi);
  }

 private:
  const Json& at(const char* key) const {
    auto it = p_.find(key);
    VETO_CHECK(it != p_.end(), "node '", node_, "': params lack '", key, "'");
    return *it;
  }
  void check(bool ok, const char* key, const char* what) const {
    VETO_CHECK(ok, "node '", node_, "': '", key, "' ", what);
  }
  int64_t integer_value(const Json& v, const char* key, int64_t lo, int64_t hi) const {
    check(v.is_number_integer(), key, "must be an integer");
    const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                                 : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
    VETO_CHECK(in_range, "node '", node_, "': '", key, "' is outside [", lo, ", ", hi, "]");
    return v.get<int64_t>();
  }
  float number_value(const Json& v, const char* key) const {
    if (v.is_string() && (v == "inf" || v == "-inf")) return v == "inf" ? std::numeric_limits<float>::infinity()
                                                                        : -std::numeric_limits<float>::infinity();
    check(v.is_number(), key, "must be a number (or \"inf\" / \"-inf\")");
    const double d = v.get<double>();
    check(std::isfinite(d) && std::fabs(d) <= std::numeric_limits<float>::max(), key, "is outside float range");
    return static_cast<float>(d);
  }

  const Json& p_;
  const std::string& node_;
};

template <class Pool>
void window_to_json(const Pool& p, Json& j) {
  j["kernel_h"] = p.kernel_h, j["kernel_w"] = p.kernel_w;
  j["stride_h"] = p.stride_h, j["stride_w"] = p.stride_w;
  j["pad_top"] = p.pad_top, j["pad_left"] = p.pad_left, j["pad_bottom"] = p.pad_bottom, j["pad_right"] = p.pad_right;
}

template <class Pool>
void window_from_json(const Fields& f, Pool& p) {
  p.kernel_h = f.integer("kernel_h", 1, 1024), p.kernel_w = f.integer("kernel_w", 1, 1024);
  p.stride_h = f.integer("stride_h", 1, 1024), p.stride_w = f.integer("stride_w", 1, 1024);
  p.pad_top = f.integer("pad_top", 0, 1024), p.pad_left = f.integer("pad_left", 0, 1024);
  p.pad_bottom = f.integer("pad_bottom", 0, 1024), p.pad_right = f.integer("pad_right", 0, 1024);
}

Json params_json(const OpParams& op) {
  Json j = Json::object();
  std::visit(Overloaded{[&](const InputOp& p) { j["sample_shape"] = p.sample_shape.dims; },
                        [&](const Conv2dOp& p) {
                          j["in_channels"] = p.in_channels, j["out_channels"] = p.out_channels;
                          window_to_json(p, j);
                          j["dilation_h"] = p.dilation_h, j["dilation_w"] = p.dilation_w, j["groups"] = p.groups;
                          j["has_bias"] = p.has_bias;
                        },
                        [&](const BatchNormOp& p) { j["channels"] = p.channels, j["eps"] = p.eps; },
                        [&](const ZeroPadShortcutOp& p) {
                          j["stride"] = p.stride, j["pad_channels_before"] = p.pad_channels_before,
                          j["pad_channels_after"] = p.pad_channels_after;
                        },
                        [&](const AvgPoolOp& p) {
                          window_to_json(p, j);
                          j["count_include_pad"] = p.count_include_pad;
                        },
                        [&](const MaxPoolOp& p) { window_to_json(p, j); },
                        [&](const DenseOp& p) {
                          j["in_features"] = p.in_features, j["out_features"] = p.out_features,
                          j["has_bias"] = p.has_bias;
                        },
                        [&](const ChannelAffineOp& p) { j["scale"] = p.scale, j["shift"] = p.shift; },
                        [&](const ClipOp& p) { j["min"] = float_json(p.min), j["max"] = float_json(p.max); },
                        [&](const SliceOp& p) { j["start"] = p.start, j["step"] = p.step, j["size"] = p.size; },
                        [&](const PadOp& p) {
                          j["before"] = p.before, j["after"] = p.after, j["value"] = float_json(p.value);
                        },
                        [&](const auto&) {}},
             op);
  return j;
}

OpParams params_from_json(const std::string& op, const Fields& f, const std::string& node) {
  if (op == "input") {
    int64_t chw[3];
    f.axes("sample_shape", chw, 1, 4096);
    return InputOp{Shape{chw[0], chw[1], chw[2]}};
  }
  if (op == "conv2d") {
    Conv2dOp p;
    p.in_channels = f.integer("in_channels", 1, 65536), p.out_channels = f.integer("out_channels", 1, 65536);
    window_from_json(f, p);
    p.dilation_h = f.integer("dilation_h", 1, 1024), p.dilation_w = f.integer("dilation_w", 1, 1024);
    p.groups = f.integer("groups", 1, 65536);
    p.has_bias = f.boolean("has_bias");
    return p;
  }
  if (op == "batch_norm") {
    BatchNormOp p;
    p.channels = f.integer("channels", 1, 65536);
    p.eps = f.number("eps");
    VETO_CHECK(p.eps >= 0 && std::isfinite(p.eps), "node '", node, "': 'eps' must be >= 0");
    return p;
  }
  if (op == "relu") return ReluOp{};
  if (op == "add") return AddOp{};
  if (op == "zero_pad_shortcut")
    return ZeroPadShortcutOp{f.integer("stride", 1, 64), f.integer("pad_channels_before", 0, 65536),
                             f.integer("pad_channels_after", 0, 65536)};
  if (op == "global_avg_pool") return GlobalAvgPoolOp{};
  if (op == "avg_pool") {
    AvgPoolOp p;
    window_from_json(f, p);
    p.count_include_pad = f.boolean("count_include_pad");
    return p;
  }
  if (op == "dense") {
    DenseOp p;
    p.in_features = f.integer("in_features", 1, int64_t{1} << 28);
    p.out_features = f.integer("out_features", 1, 65536);
    p.has_bias = f.boolean("has_bias");
    return p;
  }
  if (op == "softmax") return SoftmaxOp{};
  if (op == "max_pool") {
    MaxPoolOp p;
    window_from_json(f, p);
    return p;
  }
  if (op == "concat") return ConcatOp{};
  if (op == "channel_affine") {
    ChannelAffineOp p;
    p.scale = f.numbers("scale"), p.shift = f.numbers("shift");
    for (float v : p.scale) VETO_CHECK(std::isfinite(v), "node '", node, "': a scale is infinite");
    for (float v : p.shift) VETO_CHECK(std::isfinite(v), "node '", node, "': a shift is infinite");
    return p;
  }
  if (op == "clip") return ClipOp{f.number("min"), f.number("max")};
  if (op == "slice") {
    SliceOp p;
    f.axes("start", p.start, 0, int64_t{1} << 20);
    f.axes("step", p.step, 1, int64_t{1} << 20);
    f.axes("size", p.size, 1, int64_t{1} << 20);
    return p;
  }
  if (op == "pad") {
    PadOp p;
    f.axes("before", p.before, 0, 4096);
    f.axes("after", p.after, 0, 4096);
    p.value = f.number("value");
    return p;
  }
  fail("node '", node, "' has unknown op '", op, "'");
}

}  // namespace

std::string graph_to_json(const Graph& graph) {
  Json nodes = Json::array();
  for (const Node& n : graph.nodes()) {
    Json inputs = Json::array();
    for (int i : n.inputs) inputs.push_back(graph.node(i).name);
    nodes.push_back({{"name", n.name}, {"op", op_name(n.op)}, {"inputs", inputs}, {"params", params_json(n.op)}});
  }
  return Json{{"nodes", nodes}, {"blocks", graph.blocks()}}.dump();
}

Graph graph_from_json(const std::string& text) {
  Graph g;
  try {
    Json j;
    try {
      j = parse_metadata_json(text, "graph", "model");
    } catch (const Error&) {
      fail("not valid JSON (or nested too deep)");
    }
    VETO_CHECK(j.is_object() && j.contains("nodes") && j["nodes"].is_array() && !j["nodes"].empty(),
               "not an object with a non-empty 'nodes' array");
    constexpr size_t kMaxNodes = 100000;
    VETO_CHECK(j["nodes"].size() <= kMaxNodes, "more than ", kMaxNodes, " nodes");
    for (const Json& n : j["nodes"]) {
      VETO_CHECK(n.is_object() && n.contains("name") && n["name"].is_string() && n.contains("op") &&
                     n["op"].is_string() && n.contains("inputs") && n["inputs"].is_array() && n.contains("params"),
                 "node ", g.size(), " needs a string 'name' and 'op', an 'inputs' array and 'params'");
      const std::string name = n["name"].get<std::string>();
      const std::string op = n["op"].get<std::string>();
      VETO_CHECK((op == "input") == (g.size() == 0), "node '", name,
                 "': the first node, and only it, must be the input");
      std::vector<int> inputs;
      for (const Json& in : n["inputs"]) {
        VETO_CHECK(in.is_string() && g.contains(in.get<std::string>()), "node '", name,
                   "' reads ", in.dump(), ", which is not an earlier node");
        inputs.push_back(g.find(in.get<std::string>()));
      }
      g.add(name, params_from_json(op, Fields(n["params"], name), name), std::move(inputs));
    }
    if (j.contains("blocks")) {
      VETO_CHECK(j["blocks"].is_array(), "'blocks' must be an array of node names");
      for (const Json& b : j["blocks"]) {
        VETO_CHECK(b.is_string() && g.contains(b.get<std::string>()), "block ", b.dump(), " is not a node");
        g.mark_block(g.find(b.get<std::string>()));
      }
    }
  } catch (const Error& e) {
    fail("metadata 'graph': ", e.what());
  }
  return g;
}

}  // namespace veto
