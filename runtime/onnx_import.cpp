#include "runtime/onnx_import.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/error.h"
#include "runtime/graph_json.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/json.h"

#ifdef VETO_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace veto {
namespace {

constexpr int kMinOpset = 6, kMaxOpset = 17;
constexpr size_t kMaxOnnxBytes = size_t{2} << 30;  // protobuf's own limit

const std::vector<std::string>& supported_ops() {
  static const std::vector<std::string> ops = {
      "Add",       "AveragePool", "BatchNormalization", "Cast",      "Clip",      "Concat",    "Constant",
      "ConstantOfShape", "Conv",  "Div",         "Dropout",   "Flatten",   "Gather",    "Gemm",
      "GlobalAveragePool", "Identity", "MatMul", "MaxPool",   "Mul",       "Pad",       "Relu",
      "Reshape",   "Shape",       "Slice",       "Softmax",   "Squeeze",   "Sub",       "Transpose",
      "Unsqueeze"};
  return ops;
}

struct Preset {
  const char* name;
  Preprocess preprocess;  // height/width are the model's
};

std::vector<Preset> presets() {
  Preprocess cifar;  // akamaster's CIFAR ResNets: ToTensor + ImageNet Normalize, no resize
  cifar.mean = {0.485f, 0.456f, 0.406f}, cifar.std = {0.229f, 0.224f, 0.225f};
  Preprocess torchvision = cifar;  // Resize(shorter = 8/7 of the crop) + CenterCrop, as 256/224
  torchvision.resize = "shorter_crop";
  Preprocess keras;  // keras.utils.load_img + inception_v3.preprocess_input (x / 127.5 - 1)
  keras.resize = "stretch", keras.interpolation = "nearest", keras.divisor = 127.5f;
  keras.mean = {1.f, 1.f, 1.f}, keras.std = {1.f, 1.f, 1.f};
  Preprocess unit;  // pixel / 255, nothing else
  return {{"cifar", cifar}, {"torchvision", torchvision}, {"keras", keras}, {"unit", unit}};
}

}  // namespace

std::vector<std::string> onnx_preprocess_presets() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.push_back(p.name);
  return names;
}

std::vector<std::string> onnx_supported_ops() { return supported_ops(); }

Model import_onnx(const std::string& path, const OnnxImportOptions& options) {
  const SafetensorsFile file = onnx_to_model_file(read_file(path, kMaxOnnxBytes), path, options);
  return parse_model(file, path);
}

#ifndef VETO_HAVE_ONNX

bool onnx_available() { return false; }

[[noreturn]] void no_onnx(const std::string& source) {
  fail(source, ": this veto was built without ONNX support (install libonnx-dev and libprotobuf-dev, "
               "then rebuild with -DVETO_ONNX=ON)");
}

SafetensorsFile onnx_to_model_file(const std::string&, const std::string& source, const OnnxImportOptions&) {
  no_onnx(source);
}
Model import_onnx_graph(const std::string&, const std::string& source, const std::map<std::string, std::string>&) {
  no_onnx(source);
}
OnnxTensor read_onnx_tensor(const std::string&, const std::string& source) { no_onnx(source); }

#else

bool onnx_available() { return true; }

namespace {

using Json = nlohmann::json;

// The batch size where a folded shape holds it: dynamic, never a real extent.
constexpr double kBatch = -4.0e18;
// Folded tensors are shapes and small constants; the bound keeps a crafted broadcast or
// gather from allocating without limit.
constexpr int64_t kMaxFolded = int64_t{1} << 24;

// A tensor known at import time (initializers, Constant nodes and everything computed from
// them alone). Integers are held as doubles: shape arithmetic stays far below 2^53, and
// the INT64 extremes exporters use as "to the end" in Slice only matter clamped.
struct Const {
  bool is_int = false;
  std::vector<int64_t> dims;
  std::vector<double> v;
};

// A tensor computed at run time: the veto node holding it, and its per-sample dims as ONNX
// sees them (a Flatten or Reshape changes these, not the node).
struct Value {
  int node = -1;
  std::vector<int64_t> dims;
};

int64_t to_int(double d) {
  VETO_CHECK(!std::isnan(d), "NaN where an integer is needed");
  if (d >= 9.2e18) return std::numeric_limits<int64_t>::max();
  if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(d);
}

// The element count of `dims`, refusing negative dims and counts beyond 2^62.
int64_t product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    VETO_CHECK(d >= 0 && !__builtin_mul_overflow(n, d, &n) && n <= (int64_t{1} << 62), "dims [", d,
               ", ...] are negative or too large");
  }
  return n;
}

// Names become JSON strings in the model file, which must be well-formed UTF-8 (no overlong
// forms or surrogates, as nlohmann checks); ONNX names are bytes.
bool is_utf8(const std::string& s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The allowed range of the second byte depends on the first (Unicode Table 3-7).
    int extra;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) extra = 1;
    else if (c == 0xE0) extra = 2, lo = 0xA0;
    else if (c == 0xED) extra = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) extra = 2;
    else if (c == 0xF0) extra = 3, lo = 0x90;
    else if (c == 0xF4) extra = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) extra = 3;
    else return false;
    if (s.size() - i <= size_t(extra) || byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (int k = 2; k <= extra; ++k)
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return false;
    i += size_t(extra) + 1;
  }
  return true;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;)  // (an empty tensor may have other dims of any size)
    VETO_CHECK(!__builtin_mul_overflow(s[i], dims[i], &s[i - 1]), "dims ", dims_str(dims), " are too large");
  return s;
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, std::string source) : model_(model), source_(std::move(source)) {}

  // The model file of an image classifier.
  SafetensorsFile run(const OnnxImportOptions& options);
  // The graph and weights alone (conformance runs): graph inputs after the first bound to
  // `constants`, any channel count, a trailing Softmax kept.
  Model run_graph(const std::map<std::string, std::string>& constants);

 private:
  // --- errors --------------------------------------------------------------------------
  template <class... Args>
  [[noreturn]] void node_fail(const onnx::NodeProto& n, const Args&... args) const {
    fail(source_, ": node '", label(n), "' (", n.op_type(), "): ", args...);
  }
  static std::string label(const onnx::NodeProto& n) {
    return !n.name().empty() ? n.name() : n.output_size() ? n.output(0) : std::string("?");
  }

  // --- attributes ----------------------------------------------------------------------
  const onnx::AttributeProto* attr(const onnx::NodeProto& n, const char* name) const {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t attr_int(const onnx::NodeProto& n, const char* name, int64_t fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::INT) node_fail(n, "attribute '", name, "' must be an integer");
    return a->i();
  }
  float attr_float(const onnx::NodeProto& n, const char* name, float fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::FLOAT) node_fail(n, "attribute '", name, "' must be a float");
    return a->f();
  }
  std::string attr_string(const onnx::NodeProto& n, const char* name, const std::string& fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::STRING) node_fail(n, "attribute '", name, "' must be a string");
    return a->s();
  }
  std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const char* name, std::vector<int64_t> fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::INTS) node_fail(n, "attribute '", name, "' must be a list of integers");
    return {a->ints().begin(), a->ints().end()};
  }

  // --- constants -----------------------------------------------------------------------
 public:
  Const constant(const onnx::TensorProto& t, const std::string& what) const { return tensor_const(t, what); }

 private:
  Const tensor_const(const onnx::TensorProto& t, const std::string& what) const;
  bool is_const(const onnx::NodeProto& n, int i) const {
    return i >= n.input_size() || n.input(i).empty() || consts_.count(n.input(i));
  }
  bool has_input(const onnx::NodeProto& n, int i) const { return i < n.input_size() && !n.input(i).empty(); }
  const Const& const_input(const onnx::NodeProto& n, int i) const {
    if (!has_input(n, i)) node_fail(n, "input ", i, " is missing");
    auto it = consts_.find(n.input(i));
    if (it == consts_.end()) node_fail(n, "input '", n.input(i), "' must be a constant (an initializer)");
    return it->second;
  }
  std::vector<int64_t> const_ints(const onnx::NodeProto& n, int i) const {
    const Const& c = const_input(n, i);
    std::vector<int64_t> out;
    for (double d : c.v) {
      if (d == kBatch) node_fail(n, "needs a fixed value where the model has the (dynamic) batch size");
      out.push_back(to_int(d));
    }
    return out;
  }
  // Axes from an attribute (older opsets) or an input (newer ones).
  std::vector<int64_t> ints_attr_or_input(const onnx::NodeProto& n, const char* name, int input) const {
    if (attr(n, name)) return attr_ints(n, name, {});
    if (has_input(n, input)) return const_ints(n, input);
    return {};
  }
  void fold(const onnx::NodeProto& n);

  // --- run-time values -----------------------------------------------------------------
  const Value& value(const onnx::NodeProto& n, int i) const {
    if (!has_input(n, i)) node_fail(n, "input ", i, " is missing");
    auto it = values_.find(n.input(i));
    if (it == values_.end()) node_fail(n, "input '", n.input(i), "' is not computed by an earlier node");
    return it->second;
  }
  // The value as an (N,C,H,W) tensor whose node holds exactly that shape.
  const Value& image_value(const onnx::NodeProto& n, int i) const {
    const Value& v = value(n, i);
    const auto& shape = graph_.node(v.node).shape.dims;
    const std::vector<int64_t> held(shape.begin() + 1, shape.end());
    if (v.dims.size() != 3 || v.dims != held)
      node_fail(n, "input '", n.input(i), "' has per-sample shape ", dims_str(v.dims),
                "; veto runs this op on (N,C,H,W) tensors only");
    return v;
  }
  int add_node(const onnx::NodeProto& n, OpParams op, std::vector<int> inputs) {
    if (!is_utf8(n.output(0))) node_fail(n, "its output name is not valid UTF-8");
    try {
      return graph_.add(n.output(0), std::move(op), std::move(inputs));
    } catch (const Error& e) {
      node_fail(n, e.what());
    }
  }
  // Sets output 0 of `n` to node `node` with dims taken from the node's shape.
  void set_node_output(const onnx::NodeProto& n, int node) {
    const auto& s = graph_.node(node).shape.dims;
    values_[n.output(0)] = Value{node, std::vector<int64_t>(s.begin() + 1, s.end())};
  }
  void add_param(const std::string& name, std::vector<float> values) { params_[name] = std::move(values); }
  void lower(const onnx::NodeProto& n);
  void lower_conv(const onnx::NodeProto& n);
  void lower_pool(const onnx::NodeProto& n, bool max);
  void lower_affine(const onnx::NodeProto& n);
  void lower_dense(const onnx::NodeProto& n);
  void lower_slice(const onnx::NodeProto& n);
  void lower_pad(const onnx::NodeProto& n);
  void mark_blocks();
  std::vector<int64_t> lower_graph(const std::map<std::string, std::string>& constants);
  Preprocess preprocess(const OnnxImportOptions& options, int64_t height, int64_t width) const;
  std::vector<std::string> classes(const OnnxImportOptions& options, int64_t count) const;
  std::string model_prop(const std::string& key) const {
    for (const auto& p : model_.metadata_props())
      if (p.key() == key) return p.value();
    return {};
  }

  const onnx::ModelProto& model_;
  std::string source_;
  int opset_ = 0;
  Graph graph_;
  std::map<std::string, Const> consts_;
  std::map<std::string, Value> values_;
  std::map<std::string, int> uses_;  // how many node inputs read each name
  std::map<std::string, std::vector<float>> params_;
  std::set<int> affine_nodes_;  // channel_affine nodes made here (a later Mul/Add may merge into them)
  std::string output_;
  int64_t batch_hint_ = -1;  // the input's batch dim when the model fixes it
  bool classifier_ = true;   // a model file: 3 input channels, logits out
  bool dropped_softmax_ = false;
};

Const Importer::tensor_const(const onnx::TensorProto& t, const std::string& what) const {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    fail(source_, ": tensor '", what, "' keeps its data in an external file, which veto does not read");
  Const c;
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    VETO_CHECK(d >= 0 && (d == 0 || n <= (int64_t{1} << 31) / d), source_, ": tensor '", what, "' has bad dims");
    c.dims.push_back(d);
    n *= d;
  }
  const std::string& raw = t.raw_data();
  auto take = [&](size_t elem, auto typed_size, auto read_raw, auto read_typed) {
    if (!raw.empty()) {
      VETO_CHECK(raw.size() == static_cast<size_t>(n) * elem, source_, ": tensor '", what, "' has ", raw.size(),
                 " bytes of data, its dims ", dims_str(c.dims), " need ", static_cast<size_t>(n) * elem);
      for (int64_t i = 0; i < n; ++i) c.v.push_back(read_raw(raw.data() + i * elem));
    } else {
      VETO_CHECK(typed_size == n, source_, ": tensor '", what, "' has ", typed_size, " values, its dims ",
                 dims_str(c.dims), " need ", n);
      for (int64_t i = 0; i < n; ++i) c.v.push_back(read_typed(i));
    }
  };
  auto raw_as = [](auto zero) {
    return [](const char* p) {
      decltype(zero) x;
      std::memcpy(&x, p, sizeof x);
      return static_cast<double>(x);
    };
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      take(4, t.float_data_size(), raw_as(float{}), [&](int64_t i) { return double(t.float_data(int(i))); });
      break;
    case onnx::TensorProto::DOUBLE:
      take(8, t.double_data_size(), raw_as(double{}), [&](int64_t i) { return t.double_data(int(i)); });
      break;
    case onnx::TensorProto::INT64:
      c.is_int = true;
      take(8, t.int64_data_size(), raw_as(int64_t{}), [&](int64_t i) { return double(t.int64_data(int(i))); });
      break;
    case onnx::TensorProto::INT32:
      c.is_int = true;
      take(4, t.int32_data_size(), raw_as(int32_t{}), [&](int64_t i) { return double(t.int32_data(int(i))); });
      break;
    case onnx::TensorProto::BOOL:
      c.is_int = true;
      take(1, t.int32_data_size(), raw_as(uint8_t{}), [&](int64_t i) { return double(t.int32_data(int(i)) != 0); });
      break;
    default:
      fail(source_, ": tensor '", what, "' has data type ", t.data_type(),
           ", veto reads float, double, int64, int32 and bool tensors");
  }
  return c;
}

// Numpy-style broadcasting of two constants through `f`.
template <class F>
Const broadcast(const Const& a, const Const& b, F f) {
  const size_t rank = std::max(a.dims.size(), b.dims.size());
  auto padded = [rank](const std::vector<int64_t>& d) {
    std::vector<int64_t> p(rank - d.size(), 1);
    p.insert(p.end(), d.begin(), d.end());
    return p;
  };
  const std::vector<int64_t> da = padded(a.dims), db = padded(b.dims);
  Const out;
  out.is_int = a.is_int && b.is_int;
  for (size_t i = 0; i < rank; ++i) {
    VETO_CHECK(da[i] == db[i] || da[i] == 1 || db[i] == 1, "shapes ", dims_str(a.dims), " and ", dims_str(b.dims),
               " do not broadcast");
    out.dims.push_back(da[i] == 1 ? db[i] : da[i]);
  }
  int64_t count = 1;
  for (int64_t d : out.dims) {
    VETO_CHECK(d == 0 || count <= kMaxFolded / d, "a folded broadcast of more than 2^24 values");
    count *= d;
  }
  const std::vector<int64_t> so = strides_of(out.dims), sa = strides_of(da), sb = strides_of(db);
  const int64_t n = product(out.dims);
  for (int64_t i = 0; i < n; ++i) {
    int64_t ia = 0, ib = 0;
    for (size_t k = 0; k < rank; ++k) {
      const int64_t idx = i / so[k] % out.dims[k];
      if (da[k] != 1) ia += idx * sa[k];
      if (db[k] != 1) ib += idx * sb[k];
    }
    out.v.push_back(f(a.v[size_t(ia)], b.v[size_t(ib)]));
  }
  return out;
}

int64_t normalize_axis(int64_t axis, size_t rank, const std::string& what) {
  const int64_t r = static_cast<int64_t>(rank);
  VETO_CHECK(axis >= -r && axis < r, what, ": axis ", axis, " is out of range for rank ", r);
  return axis < 0 ? axis + r : axis;
}

// ONNX Slice's start/end clamping for one axis of extent `dim`; returns the indices taken.
std::vector<int64_t> slice_indices(int64_t dim, int64_t start, int64_t end, int64_t step) {
  VETO_CHECK(step != 0 && step != std::numeric_limits<int64_t>::min(), "a Slice step is 0 or out of range");
  auto clamp_index = [dim](int64_t i, int64_t lo, int64_t hi) {
    if (i < 0) i = i < -dim ? -1 : i + dim;  // avoids overflow on INT64_MIN
    return std::clamp(i, lo, hi);
  };
  // Counted rather than stepped, so a huge step cannot overflow the index.
  const bool up = step > 0;
  const int64_t s = up ? clamp_index(start, 0, dim) : clamp_index(start, -1, dim - 1);
  const int64_t e = up ? clamp_index(end, 0, dim) : clamp_index(end, -1, dim - 1);
  const int64_t span = up ? e - s : s - e, stride = up ? step : -step;
  const int64_t count = span > 0 ? 1 + (span - 1) / stride : 0;
  std::vector<int64_t> idx;
  for (int64_t k = 0; k < count; ++k) idx.push_back(up ? s + k * stride : s - k * stride);
  return idx;
}

void Importer::fold(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  Const out;
  try {
    if (op == "Constant") {
      if (const auto* a = attr(n, "value")) {
        out = tensor_const(a->t(), n.output(0));
      } else if (const auto* f = attr(n, "value_float")) {
        out.v = {f->f()};
      } else if (const auto* i = attr(n, "value_int")) {
        out.is_int = true, out.v = {double(i->i())};
      } else if (const auto* fs = attr(n, "value_floats")) {
        out.dims = {fs->floats_size()};
        out.v.assign(fs->floats().begin(), fs->floats().end());
      } else if (const auto* is = attr(n, "value_ints")) {
        out.is_int = true, out.dims = {is->ints_size()};
        for (int64_t x : is->ints()) out.v.push_back(double(x));
      } else {
        node_fail(n, "has no value veto reads (value, value_float(s), value_int(s))");
      }
    } else if (op == "Identity" || op == "Dropout") {
      out = const_input(n, 0);
    } else if (op == "Shape") {
      std::vector<int64_t> dims;
      double first;
      if (consts_.count(n.input(0))) {
        dims = consts_.at(n.input(0)).dims;
        first = dims.empty() ? 0 : double(dims[0]);
      } else {
        dims = value(n, 0).dims;
        dims.insert(dims.begin(), 0);
        first = kBatch;
      }
      const int64_t r = static_cast<int64_t>(dims.size());
      int64_t s = attr_int(n, "start", 0), e = attr_int(n, "end", r);
      s = std::clamp(s < 0 ? s + r : s, int64_t{0}, r), e = std::clamp(e < 0 ? e + r : e, int64_t{0}, r);
      out.is_int = true;
      for (int64_t i = s; i < e; ++i) out.v.push_back(i == 0 ? first : double(dims[size_t(i)]));
      out.dims = {static_cast<int64_t>(out.v.size())};
    } else if (op == "Cast") {
      out = const_input(n, 0);
      const int64_t to = attr_int(n, "to", 0);
      if (to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE) {
        out.is_int = false;
      } else if (to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32 || to == onnx::TensorProto::BOOL) {
        for (double& d : out.v)
          if (d != kBatch) d = to == onnx::TensorProto::BOOL ? double(d != 0) : std::trunc(d);
        out.is_int = true;
      } else {
        node_fail(n, "casts to data type ", to, ", veto folds casts to float, double, int64, int32 and bool");
      }
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      const Const &a = const_input(n, 0), &b = const_input(n, 1);
      for (const Const* c : {&a, &b})
        for (double d : c->v)
          if (d == kBatch) node_fail(n, "computes with the dynamic batch size, which veto cannot fold");
      const bool ints = a.is_int && b.is_int;
      out = broadcast(a, b, [&](double x, double y) {
        if (op == "Add") return x + y;
        if (op == "Sub") return x - y;
        if (op == "Mul") return x * y;
        VETO_CHECK(!ints || y != 0, "integer division by zero");
        return ints ? std::trunc(x / y) : x / y;
      });
    } else if (op == "Gather") {
      const Const &data = const_input(n, 0), &idx = const_input(n, 1);
      VETO_CHECK(!data.dims.empty(), "Gather of a scalar");
      const int64_t axis = normalize_axis(attr_int(n, "axis", 0), data.dims.size(), "Gather");
      const int64_t extent = data.dims[size_t(axis)];
      out.is_int = data.is_int;
      out.dims.assign(data.dims.begin(), data.dims.begin() + axis);
      out.dims.insert(out.dims.end(), idx.dims.begin(), idx.dims.end());
      out.dims.insert(out.dims.end(), data.dims.begin() + axis + 1, data.dims.end());
      const int64_t outer = product({data.dims.begin(), data.dims.begin() + axis});
      const int64_t inner = product({data.dims.begin() + axis + 1, data.dims.end()});
      VETO_CHECK(idx.v.empty() || outer * inner <= kMaxFolded / int64_t(idx.v.size()),
                 "a folded Gather of more than 2^24 values");
      for (int64_t o = 0; o < outer; ++o)
        for (double d : idx.v) {
          int64_t i = to_int(d);
          VETO_CHECK(i >= -extent && i < extent, "Gather index ", i, " is out of range for extent ", extent);
          if (i < 0) i += extent;
          for (int64_t k = 0; k < inner; ++k) out.v.push_back(data.v[size_t((o * extent + i) * inner + k)]);
        }
    } else if (op == "Unsqueeze" || op == "Squeeze") {
      out = const_input(n, 0);
      std::vector<int64_t> axes = ints_attr_or_input(n, "axes", 1);
      if (op == "Unsqueeze") {
        const size_t rank = out.dims.size() + axes.size();
        for (int64_t& a : axes) a = normalize_axis(a, rank, "Unsqueeze");
        std::sort(axes.begin(), axes.end());
        for (int64_t a : axes) out.dims.insert(out.dims.begin() + a, 1);
      } else {
        std::vector<int64_t> kept;
        for (size_t i = 0; i < out.dims.size(); ++i) {
          bool drop = axes.empty() && out.dims[i] == 1;
          for (int64_t a : axes) drop |= normalize_axis(a, out.dims.size(), "Squeeze") == int64_t(i);
          VETO_CHECK(!drop || out.dims[i] == 1, "Squeeze of an axis of extent ", out.dims[i]);
          if (!drop) kept.push_back(out.dims[i]);
        }
        out.dims = kept;
      }
    } else if (op == "Concat") {
      const Const& first = const_input(n, 0);
      const int64_t axis = normalize_axis(attr_int(n, "axis", 0), first.dims.size(), "Concat");
      out.dims = first.dims;
      out.dims[size_t(axis)] = 0;
      out.is_int = true;
      for (int i = 0; i < n.input_size(); ++i) {
        const Const& c = const_input(n, i);
        VETO_CHECK(c.dims.size() == first.dims.size(), "Concat of tensors of different ranks");
        out.dims[size_t(axis)] += c.dims[size_t(axis)];
        out.is_int = out.is_int && c.is_int;
      }
      const int64_t outer = product({first.dims.begin(), first.dims.begin() + axis});
      for (int64_t o = 0; o < outer; ++o)
        for (int i = 0; i < n.input_size(); ++i) {
          const Const& c = const_input(n, i);
          const int64_t run = product({c.dims.begin() + axis, c.dims.end()});
          out.v.insert(out.v.end(), c.v.begin() + o * run, c.v.begin() + (o + 1) * run);
        }
    } else if (op == "Reshape") {
      out = const_input(n, 0);
      std::vector<int64_t> shape = const_ints(n, 1);
      int64_t known = 1, infer = -1;
      for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 0) shape[i] = i < out.dims.size() ? out.dims[i] : 0;
        if (shape[i] == -1) {
          VETO_CHECK(infer < 0, "Reshape with two -1 dims");
          infer = int64_t(i);
        } else {
          VETO_CHECK(shape[i] >= 0, "Reshape to a negative dim");
          VETO_CHECK(!__builtin_mul_overflow(known, shape[i], &known), "Reshape to dims whose product overflows");
        }
      }
      if (infer >= 0) shape[size_t(infer)] = known ? int64_t(out.v.size()) / known : 0;
      VETO_CHECK(product(shape) == int64_t(out.v.size()), "Reshape of ", out.v.size(), " values to ",
                 dims_str(shape));
      out.dims = shape;
    } else if (op == "Slice") {
      const Const& data = const_input(n, 0);
      std::vector<int64_t> starts = ints_attr_or_input(n, "starts", 1), ends = ints_attr_or_input(n, "ends", 2);
      std::vector<int64_t> axes = ints_attr_or_input(n, "axes", 3), steps;
      if (has_input(n, 4)) steps = const_ints(n, 4);
      VETO_CHECK(starts.size() == ends.size(), "Slice starts and ends differ in length");
      if (axes.empty())
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
      steps.resize(starts.size(), 1);
      VETO_CHECK(axes.size() == starts.size(), "Slice axes and starts differ in length");
      std::vector<std::vector<int64_t>> taken(data.dims.size());
      for (size_t d = 0; d < data.dims.size(); ++d)
        for (int64_t i = 0; i < data.dims[d]; ++i) taken[d].push_back(i);
      for (size_t k = 0; k < axes.size(); ++k) {
        const int64_t a = normalize_axis(axes[k], data.dims.size(), "Slice");
        taken[size_t(a)] = slice_indices(data.dims[size_t(a)], starts[k], ends[k], steps[k]);
      }
      out.is_int = data.is_int;
      for (const auto& t : taken) out.dims.push_back(int64_t(t.size()));
      const std::vector<int64_t> so = strides_of(out.dims), sd = strides_of(data.dims);
      for (int64_t i = 0; i < product(out.dims); ++i) {
        int64_t src = 0;
        for (size_t d = 0; d < out.dims.size(); ++d) src += taken[d][size_t(i / so[d] % out.dims[d])] * sd[d];
        out.v.push_back(data.v[size_t(src)]);
      }
    } else if (op == "Transpose") {
      const Const& data = const_input(n, 0);
      std::vector<int64_t> perm = attr_ints(n, "perm", {});
      if (perm.empty())
        for (size_t i = data.dims.size(); i-- > 0;) perm.push_back(int64_t(i));
      VETO_CHECK(perm.size() == data.dims.size(), "Transpose perm has the wrong length");
      out.is_int = data.is_int;
      for (int64_t p : perm) out.dims.push_back(data.dims[size_t(normalize_axis(p, perm.size(), "Transpose"))]);
      const std::vector<int64_t> so = strides_of(out.dims), sd = strides_of(data.dims);
      for (int64_t i = 0; i < product(out.dims); ++i) {
        int64_t src = 0;
        for (size_t d = 0; d < out.dims.size(); ++d) src += (i / so[d] % out.dims[d]) * sd[size_t(perm[d])];
        out.v.push_back(data.v[size_t(src)]);
      }
    } else if (op == "ConstantOfShape") {
      out.dims = const_ints(n, 0);
      int64_t count = 1;
      for (int64_t d : out.dims) {
        VETO_CHECK(d >= 0 && (d == 0 || count <= kMaxFolded / d), "ConstantOfShape of more than 2^24 values");
        count *= d;
      }
      Const fill;
      if (const auto* a = attr(n, "value")) fill = tensor_const(a->t(), n.output(0));
      VETO_CHECK(fill.v.size() <= 1, "ConstantOfShape value must hold one element");
      out.is_int = fill.is_int;
      out.v.assign(size_t(product(out.dims)), fill.v.empty() ? 0.0 : fill.v[0]);
    } else {
      node_fail(n, "has only constant inputs, and veto does not fold ", op);
    }
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind(source_, 0) == 0) throw;
    node_fail(n, what);
  }
  VETO_CHECK(int64_t(out.v.size()) == product(out.dims), "internal: folded ", op, " has inconsistent dims");
  consts_[n.output(0)] = std::move(out);
}

// Conv2d from Conv: pads (or auto_pad), strides; weights and bias from initializers.
// Kernel, stride and pad sizes of convolutions and pools: positive (pads non-negative) and
// small enough that window arithmetic cannot overflow.
void check_window(const onnx::NodeProto& n, const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                  const std::vector<int64_t>& pads, const std::string& source) {
  constexpr int64_t kMax = int64_t{1} << 20;
  auto in = [](const std::vector<int64_t>& v, int64_t lo, int64_t hi) {
    return std::all_of(v.begin(), v.end(), [&](int64_t x) { return x >= lo && x <= hi; });
  };
  VETO_CHECK(kernel.size() == 2 && strides.size() == 2 && pads.size() == 4 && in(kernel, 1, kMax) &&
                 in(strides, 1, kMax) && in(pads, 0, kMax),
             source, ": node '", n.name(), "' (", n.op_type(),
             "): needs a 2-D kernel_shape, 2 strides and 4 pads, each in [1, 2^20] (pads from 0)");
}

void Importer::lower_conv(const onnx::NodeProto& n) {
  const Value& x = image_value(n, 0);
  const Const& w = const_input(n, 1);
  if (w.dims.size() != 4) node_fail(n, "expects a 4-D weight, got ", dims_str(w.dims));
  const int64_t group = attr_int(n, "group", 1);
  const std::vector<int64_t> dilations = attr_ints(n, "dilations", {1, 1});
  if (group < 1 || group > 65536) node_fail(n, "group ", group, " is out of range");
  if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1 || dilations[0] > 1024 || dilations[1] > 1024)
    node_fail(n, "needs 2 dilations in [1, 1024]");
  Conv2dOp c;
  c.out_channels = w.dims[0], c.in_channels = w.dims[1] * group, c.kernel_h = w.dims[2], c.kernel_w = w.dims[3];
  c.groups = group, c.dilation_h = dilations[0], c.dilation_w = dilations[1];
  if (c.out_channels < 1) node_fail(n, "has no filters");
  const std::vector<int64_t> kernel = attr_ints(n, "kernel_shape", {c.kernel_h, c.kernel_w});
  if (kernel != std::vector<int64_t>{c.kernel_h, c.kernel_w})
    node_fail(n, "kernel_shape ", dims_str(kernel), " differs from the weight's ", dims_str(w.dims));
  const std::vector<int64_t> strides = attr_ints(n, "strides", {1, 1});
  const std::vector<int64_t> pads = attr_ints(n, "pads", {0, 0, 0, 0});
  check_window(n, kernel, strides, pads, source_);
  c.stride_h = strides[0], c.stride_w = strides[1];
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    c.pad_top = pads[0], c.pad_left = pads[1], c.pad_bottom = pads[2], c.pad_right = pads[3];
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // Output = ceil(input / stride); an odd total goes after (UPPER) or before (LOWER).
    auto same = [&](int64_t in, int64_t k, int64_t s, int64_t& before, int64_t& after) {
      const int64_t total = std::max<int64_t>(((in + s - 1) / s - 1) * s + k - in, 0);
      before = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      after = total - before;
    };
    same(x.dims[1], (c.kernel_h - 1) * c.dilation_h + 1, c.stride_h, c.pad_top, c.pad_bottom);
    same(x.dims[2], (c.kernel_w - 1) * c.dilation_w + 1, c.stride_w, c.pad_left, c.pad_right);
  } else if (auto_pad != "VALID") {
    node_fail(n, "unknown auto_pad '", auto_pad, "'");
  }
  c.has_bias = has_input(n, 2);
  const int node = add_node(n, c, {x.node});
  add_param(n.output(0) + ".weight", std::vector<float>(w.v.begin(), w.v.end()));
  if (c.has_bias) {
    const Const& b = const_input(n, 2);
    if (int64_t(b.v.size()) != c.out_channels)
      node_fail(n, "bias has ", b.v.size(), " values for ", c.out_channels, " filters");
    add_param(n.output(0) + ".bias", std::vector<float>(b.v.begin(), b.v.end()));
  }
  set_node_output(n, node);
}

// MaxPool / AveragePool. ceil_mode becomes extra padding after: the windows are the same,
// padded cells never win a max and are not counted in an average that excludes padding.
void Importer::lower_pool(const onnx::NodeProto& n, bool max) {
  const Value& x = image_value(n, 0);
  const std::vector<int64_t> kernel = attr_ints(n, "kernel_shape", {});
  const std::vector<int64_t> strides = attr_ints(n, "strides", {1, 1});
  for (int64_t d : attr_ints(n, "dilations", {1, 1}))
    if (d != 1) node_fail(n, "dilations other than 1 are not supported");
  if (attr_int(n, "storage_order", 0) != 0) node_fail(n, "storage_order 1 is not supported");
  if (n.output_size() > 1 && !n.output(1).empty()) node_fail(n, "the Indices output is not supported");
  std::vector<int64_t> pads = attr_ints(n, "pads", {0, 0, 0, 0});
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  const bool include_pad = !max && attr_int(n, "count_include_pad", 0) != 0;
  check_window(n, kernel, strides, pads, source_);
  const bool ceil = attr_int(n, "ceil_mode", 0) != 0;
  for (int a = 0; a < 2; ++a) {
    const int64_t in = x.dims[size_t(a + 1)], k = kernel[size_t(a)], s = strides[size_t(a)];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t total = std::max<int64_t>(((in + s - 1) / s - 1) * s + k - in, 0);
      pads[size_t(a)] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[size_t(a + 2)] = total - pads[size_t(a)];
    } else if (auto_pad == "VALID") {
      pads[size_t(a)] = pads[size_t(a + 2)] = 0;
    } else if (auto_pad != "NOTSET") {
      node_fail(n, "unknown auto_pad '", auto_pad, "'");
    }
    const int64_t span = in + pads[size_t(a)] + pads[size_t(a + 2)] - k;
    if (span < 0) node_fail(n, "the window does not fit the input ", dims_str(x.dims));
    if (ceil) {
      int64_t out = (span + s - 1) / s + 1;
      if ((out - 1) * s >= in + pads[size_t(a)]) --out;  // the last window must start inside
      const int64_t extra = (out - 1) * s + k - (in + pads[size_t(a)] + pads[size_t(a + 2)]);
      if (extra > 0 && include_pad)
        node_fail(n, "ceil_mode with count_include_pad is not supported (the overhang is not counted)");
      pads[size_t(a + 2)] += std::max<int64_t>(extra, 0);
    }
  }
  int node;
  if (max) {
    MaxPoolOp p{kernel[0], kernel[1], strides[0], strides[1], pads[0], pads[1], pads[2], pads[3]};
    node = add_node(n, p, {x.node});
  } else {
    AvgPoolOp p{kernel[0], kernel[1], strides[0], strides[1], pads[0], pads[1], pads[2], pads[3], include_pad};
    node = add_node(n, p, {x.node});
  }
  set_node_output(n, node);
}

// Add / Sub / Mul / Div with one constant operand (a scalar or one value per channel): a
// channel_affine, merged into the previous one when that is its only reader. Add of two
// run-time tensors of one shape is veto's add.
void Importer::lower_affine(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  const bool c0 = is_const(n, 0), c1 = is_const(n, 1);
  if (!c0 && !c1) {
    if (op != "Add") node_fail(n, "of two computed tensors is not supported (only Add is)");
    const Value &a = value(n, 0), &b = value(n, 1);
    if (a.dims != b.dims || graph_.node(a.node).shape != graph_.node(b.node).shape)
      node_fail(n, "adds tensors of different shapes ", dims_str(a.dims), " and ", dims_str(b.dims),
                " (veto does not broadcast computed tensors)");
    const int node = add_node(n, AddOp{}, {a.node, b.node});
    values_[n.output(0)] = Value{node, a.dims};
    return;
  }
  const int xi = c0 ? 1 : 0;
  const Value& x = value(n, xi);
  Const c = const_input(n, 1 - xi);
  const Node& xnode = graph_.node(x.node);
  if (opset_ < 7 && attr_int(n, "broadcast", 0) != 0) {
    // Before opset 7 the constant lines up at `axis` (default: the trailing dims); as a
    // numpy broadcast that is trailing 1s.
    const int64_t rank = int64_t(x.dims.size()) + 1, crank = int64_t(c.dims.size());
    const int64_t axis = attr_int(n, "axis", rank - crank);
    if (axis < 0 || axis + crank > rank) node_fail(n, "legacy broadcast axis ", axis, " does not fit");
    c.dims.resize(size_t(rank - axis), 1);
  }
  // Add of a bias vector to a dense layer without one (MatMul + Add): the dense layer's bias.
  if (op == "Add" && x.dims.size() == 1 && std::get_if<DenseOp>(&xnode.op) &&
      !std::get<DenseOp>(xnode.op).has_bias && uses_[n.input(xi)] == 1 && int64_t(c.v.size()) == x.dims[0]) {
    DenseOp d = std::get<DenseOp>(xnode.op);
    d.has_bias = true;
    graph_.replace_op(x.node, d);
    add_param(xnode.name + ".bias", std::vector<float>(c.v.begin(), c.v.end()));
    values_[n.output(0)] = x;
    return;
  }
  const std::vector<int64_t>& held = xnode.shape.dims;
  if (held.size() != 4) node_fail(n, "with a constant is supported on (N,C,H,W) tensors only");
  const int64_t channels = held[1];
  // The constant must be a scalar or hold one value per channel: dims [..., C, 1, 1] with
  // the per-sample dims of x (a batch dim of 1 allowed in front).
  bool per_channel = false;
  if (c.v.size() != 1) {
    std::vector<int64_t> want(x.dims.size(), 1);
    if (!x.dims.empty()) want[0] = x.dims[0];
    std::vector<int64_t> got = c.dims;
    while (got.size() > want.size() && got.front() == 1) got.erase(got.begin());
    while (got.size() < want.size()) got.insert(got.begin(), 1);
    per_channel = x.dims.size() == 3 && x.dims[0] == channels && got == want;
    if (!per_channel)
      node_fail(n, "constant of shape ", dims_str(c.dims), " is neither a scalar nor one value per channel of ",
                dims_str(x.dims));
  }
  std::vector<float> scale(size_t(channels), 1.f), shift(size_t(channels), 0.f);
  for (int64_t ch = 0; ch < channels; ++ch) {
    const double k = c.v[per_channel ? size_t(ch) : 0];
    float& sc = scale[size_t(ch)];
    float& sh = shift[size_t(ch)];
    if (op == "Add") sh = float(k);
    else if (op == "Mul") sc = float(k);
    else if (op == "Sub" && xi == 0) sh = float(-k);
    else if (op == "Sub") sc = -1.f, sh = float(k);
    else if (op == "Div" && xi == 0 && k != 0) sc = float(1.0 / k);
    else if (op == "Div" && xi == 0) node_fail(n, "divides by zero");
    else node_fail(n, "divides a constant by a computed tensor, which is not supported");
  }
  if (affine_nodes_.count(x.node) && uses_[n.input(xi)] == 1) {
    // y = (x * s0 + b0) * s1 + b1: one channel_affine instead of two.
    ChannelAffineOp merged = std::get<ChannelAffineOp>(xnode.op);
    for (size_t ch = 0; ch < size_t(channels); ++ch) {
      merged.scale[ch] *= scale[ch];
      merged.shift[ch] = merged.shift[ch] * scale[ch] + shift[ch];
    }
    graph_.replace_op(x.node, merged);
    values_[n.output(0)] = x;
    return;
  }
  const int node = add_node(n, ChannelAffineOp{scale, shift}, {x.node});
  affine_nodes_.insert(node);
  values_[n.output(0)] = Value{node, x.dims};
}

// Gemm (A computed, B and C constant) and MatMul (B constant): veto's dense layer, weight
// (out, in). The input is flattened per sample as dense always does.
void Importer::lower_dense(const onnx::NodeProto& n) {
  const Value& x = value(n, 0);
  if (x.dims.size() != 1) node_fail(n, "expects (N, features) input, got per-sample shape ", dims_str(x.dims));
  const Const& b = const_input(n, 1);
  if (b.dims.size() != 2) node_fail(n, "expects a 2-D constant B, got ", dims_str(b.dims));
  const bool gemm = n.op_type() == "Gemm";
  if (gemm && attr_int(n, "transA", 0) != 0) node_fail(n, "transA = 1 is not supported");
  const bool trans_b = gemm && attr_int(n, "transB", 0) != 0;
  const float alpha = gemm ? attr_float(n, "alpha", 1.f) : 1.f, beta = gemm ? attr_float(n, "beta", 1.f) : 1.f;
  DenseOp d;
  d.in_features = trans_b ? b.dims[1] : b.dims[0];
  d.out_features = trans_b ? b.dims[0] : b.dims[1];
  if (d.in_features != x.dims[0])
    node_fail(n, "B ", dims_str(b.dims), " does not fit ", x.dims[0], " input features");
  std::vector<float> w(size_t(d.in_features * d.out_features));
  for (int64_t o = 0; o < d.out_features; ++o)
    for (int64_t i = 0; i < d.in_features; ++i)
      w[size_t(o * d.in_features + i)] = alpha * float(trans_b ? b.v[size_t(o * d.in_features + i)]
                                                               : b.v[size_t(i * d.out_features + o)]);
  d.has_bias = gemm && has_input(n, 2);
  std::vector<float> bias;
  if (d.has_bias) {
    const Const& c = const_input(n, 2);
    const int64_t cn = int64_t(c.v.size());
    if (cn != 1 && cn != d.out_features) node_fail(n, "C has ", cn, " values for ", d.out_features, " outputs");
    for (int64_t o = 0; o < d.out_features; ++o) bias.push_back(beta * float(c.v[size_t(cn == 1 ? 0 : o)]));
  }
  const int node = add_node(n, d, {x.node});
  add_param(n.output(0) + ".weight", std::move(w));
  if (d.has_bias) add_param(n.output(0) + ".bias", std::move(bias));
  set_node_output(n, node);
}

// Slice of (C,H,W) with positive steps, and Gather of one channel (a Slice that drops the
// channel axis, which a following Unsqueeze puts back).
void Importer::lower_slice(const onnx::NodeProto& n) {
  const Value& x = image_value(n, 0);
  SliceOp s;
  for (int a = 0; a < 3; ++a) s.size[a] = x.dims[size_t(a)];
  std::vector<int64_t> dims = x.dims;
  if (n.op_type() == "Gather") {
    const Const& idx = const_input(n, 1);
    if (normalize_axis(attr_int(n, "axis", 0), 4, "Gather") != 1 || !idx.dims.empty())
      node_fail(n, "only a Gather of one channel (axis 1, scalar index) is supported");
    int64_t i = to_int(idx.v[0]);
    if (i < -x.dims[0] || i >= x.dims[0]) node_fail(n, "channel index ", i, " is out of range");
    s.start[0] = i < 0 ? i + x.dims[0] : i, s.size[0] = 1;
    dims.erase(dims.begin());
  } else {
    std::vector<int64_t> starts = ints_attr_or_input(n, "starts", 1), ends = ints_attr_or_input(n, "ends", 2);
    std::vector<int64_t> axes = ints_attr_or_input(n, "axes", 3), steps;
    if (has_input(n, 4)) steps = const_ints(n, 4);
    if (starts.size() != ends.size()) node_fail(n, "starts and ends differ in length");
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
    if (axes.size() != starts.size()) node_fail(n, "axes and starts differ in length");
    steps.resize(starts.size(), 1);
    for (size_t k = 0; k < axes.size(); ++k) {
      const int64_t a = normalize_axis(axes[k], 4, "Slice");
      if (steps[k] <= 0) node_fail(n, "steps must be positive on computed tensors");
      if (a == 0) {
        if (starts[k] != 0 || ends[k] < std::numeric_limits<int32_t>::max() || steps[k] != 1)
          node_fail(n, "slices the batch axis, which is not supported");
        continue;
      }
      const std::vector<int64_t> idx = slice_indices(x.dims[size_t(a - 1)], starts[k], ends[k], steps[k]);
      if (idx.empty()) node_fail(n, "takes nothing on axis ", a);
      s.start[a - 1] = idx[0], s.step[a - 1] = steps[k], s.size[a - 1] = int64_t(idx.size());
      dims[size_t(a - 1)] = int64_t(idx.size());
    }
  }
  const int node = add_node(n, s, {x.node});
  values_[n.output(0)] = Value{node, dims};
}

void Importer::lower_pad(const onnx::NodeProto& n) {
  const Value& x = image_value(n, 0);
  const std::string mode = attr_string(n, "mode", "constant");
  if (mode != "constant") node_fail(n, "mode '", mode, "' is not supported (only constant)");
  std::vector<int64_t> pads = opset_ < 11 ? attr_ints(n, "pads", {}) : const_ints(n, 1);
  float fill = opset_ < 11 ? attr_float(n, "value", 0.f) : 0.f;
  if (opset_ >= 11 && has_input(n, 2)) {
    const Const& v = const_input(n, 2);
    if (v.v.size() != 1) node_fail(n, "constant_value must be a scalar");
    fill = float(v.v[0]);
  }
  if (pads.size() != 8) node_fail(n, "needs 8 pads for a 4-D input, got ", pads.size());
  if (pads[0] != 0 || pads[4] != 0) node_fail(n, "pads the batch axis, which is not supported");
  PadOp p;
  p.value = fill;
  for (int a = 0; a < 3; ++a) {
    p.before[a] = pads[size_t(a + 1)], p.after[a] = pads[size_t(a + 5)];
    if (p.before[a] < 0 || p.after[a] < 0) node_fail(n, "negative pads (cropping) are not supported");
  }
  set_node_output(n, add_node(n, p, {x.node}));
}

void Importer::lower(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  if (op == "Conv") return lower_conv(n);
  if (op == "MaxPool" || op == "AveragePool") return lower_pool(n, op == "MaxPool");
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return lower_affine(n);
  if (op == "Gemm" || op == "MatMul") return lower_dense(n);
  if (op == "Slice" || op == "Gather") return lower_slice(n);
  if (op == "Pad") return lower_pad(n);
  if (op == "Identity" || op == "Dropout") {  // inference no-ops
    if (n.output_size() > 1 && !n.output(1).empty() && uses_[n.output(1)] > 0)
      node_fail(n, "the mask output is read, which veto does not compute");
    values_[n.output(0)] = value(n, 0);
    return;
  }
  if (op == "Relu") {
    const Value& x = value(n, 0);
    values_[n.output(0)] = Value{add_node(n, ReluOp{}, {x.node}), x.dims};
    return;
  }
  if (op == "Clip") {
    const Value& x = value(n, 0);
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (opset_ < 11) {
      lo = attr_float(n, "min", lo), hi = attr_float(n, "max", hi);
    } else {
      for (int i : {1, 2}) {
        if (!has_input(n, i)) continue;
        const Const& c = const_input(n, i);
        if (c.v.size() != 1) node_fail(n, "min and max must be scalars");
        (i == 1 ? lo : hi) = float(c.v[0]);
      }
    }
    const OpParams p = lo == 0.f && std::isinf(hi) && hi > 0 ? OpParams(ReluOp{}) : OpParams(ClipOp{lo, hi});
    const int node = add_node(n, p, {x.node});
    values_[n.output(0)] = Value{node, x.dims};
    return;
  }
  if (op == "BatchNormalization") {
    const Value& x = image_value(n, 0);
    if (attr_int(n, "training_mode", 0) != 0) node_fail(n, "training_mode is not supported");
    if (attr_int(n, "spatial", 1) != 1) node_fail(n, "spatial = 0 (per-position statistics) is not supported");
    BatchNormOp b{x.dims[0], attr_float(n, "epsilon", 1e-5f)};
    const int node = add_node(n, b, {x.node});
    const char* names[] = {".weight", ".bias", ".running_mean", ".running_var"};
    for (int i = 0; i < 4; ++i) {
      const Const& c = const_input(n, i + 1);
      if (int64_t(c.v.size()) != b.channels)
        node_fail(n, "input ", i + 1, " has ", c.v.size(), " values for ", b.channels, " channels");
      add_param(n.output(0) + names[i], std::vector<float>(c.v.begin(), c.v.end()));
    }
    return set_node_output(n, node);
  }
  if (op == "GlobalAveragePool") return set_node_output(n, add_node(n, GlobalAvgPoolOp{}, {image_value(n, 0).node}));
  if (op == "Concat") {
    std::vector<int> inputs;
    for (int i = 0; i < n.input_size(); ++i) inputs.push_back(image_value(n, i).node);
    if (normalize_axis(attr_int(n, "axis", 1), 4, "Concat") != 1)
      node_fail(n, "only concatenation of channels (axis 1) is supported");
    return set_node_output(n, add_node(n, ConcatOp{}, inputs));
  }
  if (op == "Flatten" || op == "Reshape") {
    const Value& x = value(n, 0);
    const int64_t features = product(x.dims);
    if (op == "Flatten") {
      if (normalize_axis(attr_int(n, "axis", 1), x.dims.size() + 1, "Flatten") != 1)
        node_fail(n, "only Flatten with axis 1 (per sample) is supported");
    } else {
      const Const& shape = const_input(n, 1);
      std::vector<int64_t> target;
      for (size_t i = 1; i < shape.v.size(); ++i) target.push_back(to_int(shape.v[i]));
      const double d0 = shape.v.empty() ? 1 : shape.v[0];
      // The batch axis stays when given as such or inferred (-1) from a fully given rest
      // (tf2onnx writes Keras' Flatten as Reshape(x, [-1, features])).
      const bool batch = d0 == kBatch || d0 == 0 || (d0 >= 1 && to_int(d0) == batch_hint_) ||
                         (d0 == -1 && !target.empty() &&
                          std::all_of(target.begin(), target.end(), [](int64_t t) { return t >= 1; }) &&
                          product(target) == features);
      if (!batch) node_fail(n, "reshapes the batch axis (to ", to_int(d0), "), which is not supported");
      const bool flatten = target.size() == 1 && (target[0] == -1 || target[0] == features);
      if (!flatten && target != x.dims)
        node_fail(n, "only a reshape to (N, -1) is supported, got ", dims_str(target), " for per-sample shape ",
                  dims_str(x.dims));
      if (!flatten) {
        values_[n.output(0)] = x;
        return;
      }
    }
    values_[n.output(0)] = Value{x.node, {features}};
    return;
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    const Value& x = value(n, 0);
    const std::vector<int64_t> axes = ints_attr_or_input(n, "axes", 1);
    if (op == "Squeeze" && !axes.empty()) {
      // Squeezing the 1×1 map of a global pool to (N, C) (tf2onnx's Keras heads): a view,
      // like Flatten.
      std::vector<bool> drop(x.dims.size() + 1, false);
      for (int64_t a : axes) drop[size_t(normalize_axis(a, x.dims.size() + 1, op))] = true;
      std::vector<int64_t> kept;
      bool ones = !drop[0];
      for (size_t i = 0; i < x.dims.size(); ++i) {
        if (!drop[i + 1]) kept.push_back(x.dims[i]);
        else ones &= x.dims[i] == 1;
      }
      if (!ones || kept.size() != 1)
        node_fail(n, "is supported only to squeeze size-1 axes leaving (N, features), got axes ",
                  dims_str(axes), " of per-sample shape ", dims_str(x.dims));
      values_[n.output(0)] = Value{x.node, kept};
      return;
    }
    // Unsqueeze only to undo a Gather of one channel: the node still holds (N,1,H,W).
    const auto& held = graph_.node(x.node).shape.dims;
    std::vector<int64_t> want(held.begin() + 1, held.end());
    const bool undo = op == "Unsqueeze" && axes.size() == 1 && normalize_axis(axes[0], x.dims.size() + 2, op) == 1 &&
                      x.dims.size() == 2 && want.size() == 3 && want[0] == 1;
    if (!undo) node_fail(n, "is supported only to restore the channel axis a Gather of one channel removed");
    values_[n.output(0)] = Value{x.node, want};
    return;
  }
  if (op == "Softmax") {
    const Value& x = value(n, 0);
    const int64_t axis = attr_int(n, "axis", opset_ >= 13 ? -1 : 1);
    if (x.dims.size() != 1 || (axis != 1 && axis != -1))
      node_fail(n, "only a softmax over the classes of (N, K) is supported");
    if (classifier_ && n.output(0) == output_) {  // veto works on logits; it takes the softmax itself
      dropped_softmax_ = true;
      values_[n.output(0)] = x;
      return;
    }
    return set_node_output(n, add_node(n, SoftmaxOp{}, {x.node}));
  }
  node_fail(n, "is not supported on computed tensors");
}

// Blocks (the default attribution layers): the outputs of merges (Add, Concat) after the
// first learned layer that every path from the input to the output crosses, taken after an
// activation that directly and only follows them: ResNet's block outputs, Inception's mixed
// layers (not the Concat of torchvision's transform_input).
void Importer::mark_blocks() {
  const int count = graph_.size();
  const auto consumers = graph_.consumers();
  // Node v cuts the graph when no edge jumps over it (u < v < w).
  int furthest = 0;
  bool learned = false;
  for (int v = 0; v < count; ++v) {
    const bool cut = furthest <= v;
    for (int w : consumers[size_t(v)]) furthest = std::max(furthest, w);
    const Node& node = graph_.node(v);
    const bool after_learned = learned;
    learned = learned || !param_specs(node.op, node.name).empty();
    const bool merge = std::get_if<AddOp>(&node.op) || std::get_if<ConcatOp>(&node.op);
    if (!cut || !after_learned || v == count - 1 || !merge) continue;
    int block = v;  // advanced through an activation that alone reads the merge
    while (consumers[size_t(block)].size() == 1) {
      const Node& next = graph_.node(consumers[size_t(block)][0]);
      if (!std::get_if<ReluOp>(&next.op) && !std::get_if<ClipOp>(&next.op)) break;
      block = consumers[size_t(block)][0];
    }
    if (block != count - 1) graph_.mark_block(block);
  }
}

Preprocess Importer::preprocess(const OnnxImportOptions& options, int64_t height, int64_t width) const {
  std::string choice = options.preprocess.empty() ? model_prop("veto.preprocess") : options.preprocess;
  if (choice.empty()) choice = height == 32 && width == 32 ? "cifar" : "torchvision";
  Preprocess p;
  if (!choice.empty() && choice[0] == '{') {
    p = preprocess_from_json(choice, source_ + " (--preprocess)");
    VETO_CHECK(p.height == height && p.width == width, source_, ": --preprocess makes ", p.height, "x", p.width,
               " inputs, the model takes ", height, "x", width);
    return p;
  }
  std::string names;
  for (const Preset& preset : presets()) {
    names += (names.empty() ? "" : ", ") + std::string(preset.name);
    if (choice != preset.name) continue;
    p = preset.preprocess;
    p.height = height, p.width = width;
    if (p.resize == "shorter_crop") p.resize_shorter = (std::min(height, width) * 8 + 3) / 7;
    return p;
  }
  fail("--preprocess '", choice, "' is neither a JSON object nor a preset (", names, ")");
}

std::vector<std::string> Importer::classes(const OnnxImportOptions& options, int64_t count) const {
  std::vector<std::string> names;
  if (!options.classes_file.empty()) {
    std::ifstream in(options.classes_file);
    VETO_CHECK(in, options.classes_file, ": cannot read the class names");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      VETO_CHECK(is_utf8(line), options.classes_file, ": line ", names.size() + 1, " is not valid UTF-8");
      if (!line.empty()) names.push_back(line);
    }
    VETO_CHECK(int64_t(names.size()) == count, options.classes_file, ": ", names.size(),
               " class names, the model has ", count, " outputs");
    return names;
  }
  const std::string prop = model_prop("veto.classes");
  if (!prop.empty()) {
    const Json j = parse_metadata_json(prop, "veto.classes", source_);
    VETO_CHECK(j.is_array() && int64_t(j.size()) == count, source_,
               ": metadata_props 'veto.classes' must be an array of ", count, " names");
    for (const Json& c : j) {
      VETO_CHECK(c.is_string(), source_, ": metadata_props 'veto.classes' must hold strings");
      names.push_back(c.get<std::string>());
    }
    return names;
  }
  for (int64_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
  return names;
}

// Checks the model and lowers its graph into graph_ (params_ the weights); returns the
// input's (C, H, W).
std::vector<int64_t> Importer::lower_graph(const std::map<std::string, std::string>& constants) {
  for (const auto& o : model_.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset_ = o.version() >= 0 && o.version() <= 1000 ? int(o.version()) : -1;
  VETO_CHECK(opset_ >= kMinOpset && opset_ <= kMaxOpset, source_, ": opset ", opset_,
             " is not supported (veto reads opsets ", kMinOpset, " to ", kMaxOpset, ")");
  const onnx::GraphProto& g = model_.graph();

  // Every unsupported node at once, so a user sees the whole list.
  std::string unsupported;
  int unsupported_count = 0;
  const auto& ops = supported_ops();
  for (const auto& n : g.node()) {
    const bool ours = n.domain().empty() || n.domain() == "ai.onnx";
    if (ours && std::find(ops.begin(), ops.end(), n.op_type()) != ops.end()) continue;
    if (++unsupported_count <= 20)
      unsupported += (unsupported.empty() ? "" : ", ") + label(n) + " (" + (ours ? "" : n.domain() + ".") +
                     n.op_type() + ")";
  }
  VETO_CHECK(unsupported_count == 0, source_, ": ", unsupported_count, " unsupported node",
             unsupported_count == 1 ? "" : "s", ": ", unsupported, unsupported_count > 20 ? ", ..." : "");

  for (const auto& t : g.initializer()) consts_[t.name()] = tensor_const(t, t.name());
  for (const auto& [name, bytes] : constants) {
    onnx::TensorProto t;
    VETO_CHECK(t.ParseFromString(bytes), source_, ": constant input '", name, "' is not a TensorProto");
    consts_[name] = tensor_const(t, name);
  }
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& in : g.input())
    if (!consts_.count(in.name())) inputs.push_back(&in);
  VETO_CHECK(inputs.size() == 1, source_, ": the model has ", inputs.size(),
             " inputs that are not initializers; veto models take one image tensor");
  VETO_CHECK(g.output_size() == 1, source_, ": the model has ", g.output_size(), " outputs; veto needs one (logits)");
  output_ = g.output(0).name();

  const onnx::ValueInfoProto& in = *inputs[0];
  VETO_CHECK(in.type().has_tensor_type() && in.type().tensor_type().elem_type() == onnx::TensorProto::FLOAT, source_,
             ": input '", in.name(), "' must be a float tensor");
  const auto& shape = in.type().tensor_type().shape();
  // Image classifiers take (N, 3, H, W); conformance graphs also (N, K) and (N, C, L).
  VETO_CHECK(shape.dim_size() == 4 || (!classifier_ && shape.dim_size() >= 2 && shape.dim_size() <= 4), source_,
             ": input '", in.name(), "' has rank ", shape.dim_size(), "; veto needs (N, 3, H, W)");
  std::vector<int64_t> chw;
  for (int i = 1; i < shape.dim_size(); ++i) {
    const auto& d = shape.dim(i);
    VETO_CHECK(d.has_dim_value() && d.dim_value() > 0, source_, ": input '", in.name(), "' dimension ", i,
               " is dynamic ('", d.dim_param(), "'); only the batch dimension may be");
    chw.push_back(d.dim_value());
  }
  VETO_CHECK((chw[0] == 3 || !classifier_) &&
                 std::all_of(chw.begin(), chw.end(), [](int64_t d) { return d <= 4096; }),
             source_, ": input '", in.name(), "' is ", dims_str(chw), "; veto needs 3 channels and at most 4096x4096");
  VETO_CHECK(!in.name().empty() && is_utf8(in.name()), source_, ": the input's name is empty or not valid UTF-8");
  batch_hint_ = shape.dim(0).has_dim_value() ? shape.dim(0).dim_value() : -1;
  graph_.add(in.name(), InputOp{Shape(chw)});
  values_[in.name()] = Value{0, chw};

  for (const auto& n : g.node())
    for (const auto& name : n.input()) ++uses_[name];
  for (const auto& n : g.node()) {
    if (n.output_size() < 1 || n.output(0).empty()) node_fail(n, "has no output");
    bool all_const = true;
    for (int i = 0; i < n.input_size(); ++i) all_const = all_const && is_const(n, i);
    // Shape of a computed tensor is known here too (with a symbolic batch size).
    const bool shape_of_value = n.op_type() == "Shape" && n.input_size() == 1;
    if (n.op_type() == "Constant" || (all_const && n.input_size() > 0) || shape_of_value)
      fold(n);
    else
      lower(n);
  }

  auto it = values_.find(output_);
  VETO_CHECK(it != values_.end(), source_, ": output '", output_, "' is not computed from the input");
  VETO_CHECK(it->second.node == graph_.output(), source_, ": output '", output_,
             "' is not the last computed node (veto runs graphs that end in their output)");
  VETO_CHECK(it->second.node > 0, source_, ": the output is the input itself");
  return chw;
}

Model Importer::run_graph(const std::map<std::string, std::string>& constants) {
  classifier_ = false;
  lower_graph(constants);
  Model m;
  m.arch = "graph";
  m.source = source_;
  m.graph = std::move(graph_);
  m.params = ParamArena(m.graph.param_specs());
  for (const ParamArena::View& v : m.params.views()) {
    const std::vector<float>& values = params_.at(v.name);
    VETO_CHECK(int64_t(values.size()) == v.shape.numel(), source_, ": internal: parameter '", v.name, "' size");
    std::copy(values.begin(), values.end(), m.params.get(v.name));
  }
  return m;
}

SafetensorsFile Importer::run(const OnnxImportOptions& options) {
  const std::vector<int64_t> chw = lower_graph({});
  mark_blocks();

  Model m;
  m.arch = "graph";
  m.graph = std::move(graph_);
  m.preprocess = preprocess(options, chw[1], chw[2]);
  // A classifier's output is one score per class; a bound keeps a model whose output is an
  // image from making millions of class names.
  constexpr int64_t kMaxClasses = 1'000'000;
  const int64_t outputs = m.graph.node(m.graph.output()).shape.numel();
  VETO_CHECK(outputs <= kMaxClasses, source_, ": the output has ", outputs,
             " values per input; a veto classifier has at most ", kMaxClasses, " classes");
  m.classes = classes(options, outputs);
  SafetensorsFile file;
  file.source = source_;
  file.metadata["format"] = "veto-model/1";
  file.metadata["arch"] = "graph";
  file.metadata["graph"] = graph_to_json(m.graph);
  file.metadata["preprocess"] = preprocess_to_json(m.preprocess);
  file.metadata["classes"] = Json(m.classes).dump();
  const std::string producer = model_.producer_name() + " " + model_.producer_version();
  file.metadata["onnx_producer"] = is_utf8(producer) ? producer : "(not UTF-8)";
  file.metadata["onnx_opset"] = std::to_string(opset_);
  if (dropped_softmax_) file.metadata["onnx_dropped_softmax"] = "true";
  for (const ParamSpec& spec : m.graph.param_specs()) {
    auto p = params_.find(spec.name);
    VETO_CHECK(p != params_.end() && int64_t(p->second.size()) == spec.shape.numel(), source_,
               ": internal: parameter '", spec.name, "' was not imported");
    file.tensors.push_back(make_f32(spec.name, Tensor(spec.shape, p->second)));
  }
  return file;
}

}  // namespace

SafetensorsFile onnx_to_model_file(const std::string& bytes, const std::string& source,
                                   const OnnxImportOptions& options) {
  VETO_CHECK(bytes.size() < kMaxOnnxBytes, source, ": larger than 2 GiB, which ONNX protobufs cannot be");
  onnx::ModelProto model;
  VETO_CHECK(model.ParseFromString(bytes), source, ": not an ONNX model (protobuf parse failed; truncated?)");
  VETO_CHECK(model.has_graph() && model.graph().node_size() > 0, source, ": not an ONNX model (it has no graph)");
  return Importer(model, source).run(options);
}

Model import_onnx_graph(const std::string& bytes, const std::string& source,
                        const std::map<std::string, std::string>& constant_inputs) {
  onnx::ModelProto model;
  VETO_CHECK(bytes.size() < kMaxOnnxBytes && model.ParseFromString(bytes), source, ": not an ONNX model");
  VETO_CHECK(model.has_graph() && model.graph().node_size() > 0, source, ": not an ONNX model (it has no graph)");
  return Importer(model, source).run_graph(constant_inputs);
}

OnnxTensor read_onnx_tensor(const std::string& bytes, const std::string& source) {
  onnx::TensorProto t;
  VETO_CHECK(bytes.size() < kMaxOnnxBytes && t.ParseFromString(bytes), source, ": not an ONNX TensorProto");
  onnx::ModelProto empty;
  Importer importer(empty, source);
  const Const c = importer.constant(t, t.name());
  return OnnxTensor{t.name(), c.dims, std::vector<float>(c.v.begin(), c.v.end()), !c.is_int};
}

#endif

}  // namespace veto
