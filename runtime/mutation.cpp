#include "runtime/mutation.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/error.h"
#include "runtime/fingerprint.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"
#include "runtime/random.h"

namespace veto {

MutationOperator parse_mutation_operator(const std::string& name) {
  if (name == "nai") return MutationOperator::NAI;
  if (name == "gf") return MutationOperator::GF;
  if (name == "ws") return MutationOperator::WS;
  if (name == "ns") return MutationOperator::NS;
  fail("unknown mutation operator '", name, "' (nai, gf, ws, ns)");
}

std::string mutation_operator_name(MutationOperator op) {
  switch (op) {
    case MutationOperator::NAI: return "nai";
    case MutationOperator::GF: return "gf";
    case MutationOperator::WS: return "ws";
    case MutationOperator::NS: return "ns";
  }
  return "?";
}

namespace {

const Conv2dOp* conv_of(const Node& n) { return std::get_if<Conv2dOp>(&n.op); }

int64_t filter_size(const Conv2dOp& c) { return c.in_channels / c.groups * c.kernel_h * c.kernel_w; }

}  // namespace

std::vector<std::string> conv_layers_in_scope(const Model& model, const std::vector<std::string>& scope) {
  std::vector<std::string> out;
  std::vector<bool> used(scope.size(), false);
  for (const Node& n : model.graph.nodes()) {
    if (!conv_of(n)) continue;
    bool take = scope.empty();
    for (size_t s = 0; s < scope.size(); ++s)
      if (n.name == scope[s] || n.name.compare(0, scope[s].size() + 1, scope[s] + ".") == 0) used[s] = take = true;
    if (take) out.push_back(n.name);
  }
  for (size_t s = 0; s < scope.size(); ++s)
    VETO_CHECK(used[s], "mutation scope: '", scope[s],
               "' matches no convolution (give conv layer names or their prefixes; veto info lists the layers)");
  VETO_CHECK(!out.empty(), "mutation scope: the model has no convolution to mutate");
  return out;
}

MutantGenerator::MutantGenerator(const Model& model, MutationOperator op, double gamma, uint64_t seed,
                                 std::vector<std::string> scope)
    : op_(op), seed_(seed), layers_(conv_layers_in_scope(model, scope)) {
  VETO_CHECK(std::isfinite(gamma) && gamma > 0 && gamma <= 1, "gamma must be in (0, 1], got ", gamma);
  for (const std::string& name : layers_) {
    const Node& n = model.graph.node(model.graph.find(name));
    const Conv2dOp& c = *conv_of(n);
    Layer l;
    l.name = name;
    l.filters = c.out_channels;
    l.filter_size = filter_size(c);
    l.first = total_filters_;
    l.weights = model.params.get(name + ".weight");
    if (op == MutationOperator::GF) {
      // Per position over the layer's filters, in double (numpy's mean and std, ddof = 0).
      l.mean.assign(static_cast<size_t>(l.filter_size), 0.0f);
      l.stddev.assign(static_cast<size_t>(l.filter_size), 0.0f);
      for (int64_t i = 0; i < l.filter_size; ++i) {
        double sum = 0, sq = 0;
        for (int64_t f = 0; f < l.filters; ++f) sum += l.weights[f * l.filter_size + i];
        const double mean = sum / static_cast<double>(l.filters);
        for (int64_t f = 0; f < l.filters; ++f) {
          const double d = l.weights[f * l.filter_size + i] - mean;
          sq += d * d;
        }
        l.mean[static_cast<size_t>(i)] = static_cast<float>(mean);
        l.stddev[static_cast<size_t>(i)] = static_cast<float>(std::sqrt(sq / static_cast<double>(l.filters)));
      }
    }
    total_filters_ += l.filters;
    layer_info_.push_back(std::move(l));
  }
  per_mutant_ = std::max<int64_t>(1, std::llround(gamma * static_cast<double>(total_filters_)));
}

Mutant MutantGenerator::draw(int64_t draw) const {
  Rng rng = Rng::stream(seed_, static_cast<uint64_t>(draw));
  // per_mutant_ distinct filters uniformly over the scope (Floyd's sampling).
  std::set<int64_t> chosen;
  for (int64_t j = total_filters_ - per_mutant_; j < total_filters_; ++j) {
    const int64_t t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j + 1)));
    chosen.insert(chosen.count(t) ? j : t);
  }
  // Group by layer (the set is ordered, layers are in graph order with ascending `first`).
  std::map<size_t, std::vector<int64_t>> by_layer;
  size_t li = 0;
  for (int64_t g : chosen) {
    while (g >= layer_info_[li].first + layer_info_[li].filters) ++li;
    by_layer[li].push_back(g - layer_info_[li].first);
  }

  Mutant m;
  m.draw = draw;
  for (auto& [index, filters] : by_layer) {
    const Layer& l = layer_info_[index];
    const auto original = [&](int64_t f) { return l.weights + f * l.filter_size; };
    std::map<int64_t, std::vector<float>> changed;  // filter -> new values
    if (op_ == MutationOperator::NS) {
      // A lone filter gets a partner from the same layer so that something switches.
      if (filters.size() == 1 && l.filters > 1) {
        int64_t partner = static_cast<int64_t>(rng.below(static_cast<uint64_t>(l.filters - 1)));
        if (partner >= filters[0]) ++partner;
        filters.push_back(partner);
      }
      if (filters.size() < 2) continue;
      std::vector<int64_t> order = filters;
      for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
      // A cycle through the shuffled order: every drawn filter takes the next one's weights.
      for (size_t i = 0; i < order.size(); ++i) {
        const float* src = original(order[(i + 1) % order.size()]);
        changed[order[i]].assign(src, src + l.filter_size);
      }
    } else {
      for (int64_t f : filters) {
        std::vector<float>& v = changed[f];
        const float* w = original(f);
        v.assign(w, w + l.filter_size);
        if (op_ == MutationOperator::NAI) {
          for (float& x : v) x = -x;
        } else if (op_ == MutationOperator::GF) {
          for (int64_t i = 0; i < l.filter_size; ++i)
            v[static_cast<size_t>(i)] = static_cast<float>(l.mean[static_cast<size_t>(i)] +
                                                           l.stddev[static_cast<size_t>(i)] * rng.normal());
        } else {  // WS: Fisher-Yates over the filter's values
          for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[rng.below(i + 1)]);
        }
      }
    }
    for (auto& [f, values] : changed) m.edits.push_back({l.name, f, std::move(values)});
  }
  return m;
}

WeightDelta resolve_mutant(const Model& model, const Mutant& mutant) {
  WeightDelta d;
  std::set<std::pair<int, int64_t>> seen;
  std::map<int, std::vector<int64_t>> filters;  // conv node -> its changed filters
  for (const FilterEdit& e : mutant.edits) {
    VETO_CHECK(model.graph.contains(e.layer), "mutant ", mutant.draw, ": the model has no layer '", e.layer, "'");
    const int node = model.graph.find(e.layer);
    const Node& n = model.graph.node(node);
    const Conv2dOp* c = conv_of(n);
    VETO_CHECK(c, "mutant ", mutant.draw, ": layer '", e.layer, "' is a ", op_name(n.op), ", not a convolution");
    VETO_CHECK(e.filter >= 0 && e.filter < c->out_channels, "mutant ", mutant.draw, ": layer '", e.layer,
               "' has ", c->out_channels, " filters, got filter ", e.filter);
    const int64_t size = filter_size(*c);
    VETO_CHECK(static_cast<int64_t>(e.values.size()) == size, "mutant ", mutant.draw, ": filter ", e.filter,
               " of '", e.layer, "' needs ", size, " values, got ", e.values.size());
    VETO_CHECK(seen.insert({node, e.filter}).second, "mutant ", mutant.draw, ": filter ", e.filter, " of '",
               e.layer, "' is changed twice");
    for (size_t i = 0; i < e.values.size(); ++i)
      VETO_CHECK(std::isfinite(e.values[i]), "mutant ", mutant.draw, ": filter ", e.filter, " of '", e.layer,
                 "' has a non-finite value at ", i);
    const int64_t offset = model.params.view(n.name + ".weight").offset + e.filter * size;
    d.runs.push_back({offset, size, static_cast<int64_t>(d.values.size())});
    d.values.insert(d.values.end(), e.values.begin(), e.values.end());
    filters[node].push_back(e.filter);
  }
  for (auto& [node, list] : filters) {
    d.convs.push_back(node);
    d.filters.push_back(std::move(list));
  }
  return d;
}

ScopedDelta::ScopedDelta(ParamArena& params, const WeightDelta& delta) : params_(params), delta_(delta) {
  saved_.resize(delta.values.size());
  float* p = params.data();
  for (const WeightDelta::Run& r : delta.runs) {
    VETO_CHECK(r.offset >= 0 && r.offset + r.length <= params.size(), "weight delta outside the parameter arena");
    std::memcpy(saved_.data() + r.value, p + r.offset, static_cast<size_t>(r.length) * sizeof(float));
    std::memcpy(p + r.offset, delta.values.data() + r.value, static_cast<size_t>(r.length) * sizeof(float));
  }
}

ScopedDelta::~ScopedDelta() {
  float* p = params_.data();
  for (const WeightDelta::Run& r : delta_.runs)
    std::memcpy(p + r.offset, saved_.data() + r.value, static_cast<size_t>(r.length) * sizeof(float));
}

// --- the mutant file ------------------------------------------------------------------------

namespace {

constexpr const char* kFormat = "veto-mutants/1";

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

struct MetadataReader {
  const SafetensorsFile& file;
  const std::string& at(const std::string& key) const { return veto_metadata(file, key, "mutant"); }
  int64_t integer(const std::string& key, int64_t min, int64_t max) const {
    const std::string& s = at(key);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    VETO_CHECK(!s.empty() && *end == '\0' && errno == 0 && v >= min && v <= max, file.source, ": metadata '", key,
               "' = '", s, "' is not an integer in [", min, ", ", max, "]");
    return v;
  }
  uint64_t unsigned_integer(const std::string& key) const {
    const std::string& s = at(key);
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    VETO_CHECK(!s.empty() && s[0] != '-' && *end == '\0' && errno == 0, file.source, ": metadata '", key, "' = '", s,
               "' is not an unsigned integer");
    return v;
  }
  double real(const std::string& key, double min, double max) const {
    const std::string& s = at(key);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    VETO_CHECK(!s.empty() && *end == '\0' && std::isfinite(v) && v >= min && v <= max, file.source,
               ": metadata '", key, "' = '", s, "' is not a number in [", min, ", ", max, "]");
    return v;
  }
  std::vector<std::string> strings(const std::string& key) const {
    const nlohmann::json j = parse_metadata_json(at(key), key, file.source);
    VETO_CHECK(j.is_array(), file.source, ": metadata '", key, "' is not a JSON array");
    std::vector<std::string> out;
    for (const auto& v : j) {
      VETO_CHECK(v.is_string(), file.source, ": metadata '", key, "' holds a non-string");
      out.push_back(v.get<std::string>());
    }
    return out;
  }
};

std::vector<int64_t> int_tensor(const SafetensorsFile& f, const std::string& name, int64_t size) {
  const SafeTensor& t = f.get(name);
  VETO_CHECK(t.shape.rank() == 1 && t.shape[0] == size, f.source, ": tensor '", name, "' has shape ", t.shape.str(),
             ", expected (", size, ")");
  VETO_CHECK(t.dtype == "I64", f.source, ": tensor '", name, "' has dtype ", t.dtype, ", expected I64");
  return t.to_int64();
}

}  // namespace

void save_mutant_set(const MutantSet& set, const std::string& path) {
  // The layers the edits reference, in first-use order, with their filter sizes.
  std::vector<std::string> layers;
  std::vector<int64_t> layer_filter_size;
  std::map<std::string, int64_t> layer_index;
  std::vector<int64_t> offsets{0}, edit_layer, edit_filter, draws, correct;
  Tensor values(Shape{0});
  std::vector<float>& v = values.values();
  for (const Mutant& m : set.mutants) {
    for (const FilterEdit& e : m.edits) {
      auto it = layer_index.find(e.layer);
      if (it == layer_index.end()) {
        it = layer_index.emplace(e.layer, static_cast<int64_t>(layers.size())).first;
        layers.push_back(e.layer);
        layer_filter_size.push_back(static_cast<int64_t>(e.values.size()));
      }
      VETO_CHECK(layer_filter_size[static_cast<size_t>(it->second)] == static_cast<int64_t>(e.values.size()),
                 "mutant set: filters of layer '", e.layer, "' have different sizes");
      edit_layer.push_back(it->second);
      edit_filter.push_back(e.filter);
      v.insert(v.end(), e.values.begin(), e.values.end());
    }
    offsets.push_back(static_cast<int64_t>(edit_layer.size()));
    draws.push_back(m.draw);
    correct.push_back(m.correct);
  }
  values.reshape(Shape{static_cast<int64_t>(v.size())});
  const auto count = static_cast<int64_t>(set.mutants.size());
  const auto edits = static_cast<int64_t>(edit_layer.size());

  SafetensorsFile f;
  f.metadata["format"] = kFormat;
  f.metadata["model"] = set.model_source;
  f.metadata["arch"] = set.arch;
  f.metadata["model_fingerprint"] = set.model_fingerprint;
  f.metadata["operator"] = mutation_operator_name(set.op);
  f.metadata["gamma"] = number(set.gamma);
  f.metadata["seed"] = std::to_string(set.seed);
  f.metadata["scope"] = nlohmann::json(set.scope).dump();
  f.metadata["filters_per_mutant"] = std::to_string(set.filters_per_mutant);
  f.metadata["accept_ratio"] = number(set.accept_ratio);
  f.metadata["acceptance_data"] = set.acceptance_data;
  f.metadata["acceptance_count"] = std::to_string(set.acceptance_count);
  f.metadata["original_accuracy"] = number(set.original_accuracy);
  f.metadata["draws"] = std::to_string(set.draws);
  f.metadata["rejected"] = std::to_string(set.rejected);
  f.metadata["count"] = std::to_string(count);
  f.metadata["layers"] = nlohmann::json(layers).dump();
  f.tensors.push_back(make_i64("draw", Shape{count}, draws));
  f.tensors.push_back(make_i64("correct", Shape{count}, correct));
  f.tensors.push_back(make_i64("edit_offsets", Shape{count + 1}, offsets));
  f.tensors.push_back(make_i64("edit_layer", Shape{edits}, edit_layer));
  f.tensors.push_back(make_i64("edit_filter", Shape{edits}, edit_filter));
  f.tensors.push_back(make_i64("layer_filter_size", Shape{static_cast<int64_t>(layers.size())}, layer_filter_size));
  f.tensors.push_back(make_f32("values", values));
  write_safetensors(path, f);
}

MutantSet load_mutant_set(const std::string& path) { return parse_mutant_set(read_safetensors(path)); }

MutantSet parse_mutant_set(const SafetensorsFile& f) {
  const std::string& path = f.source;
  const MetadataReader meta{f};
  check_veto_format(f, kFormat, "mutant");
  constexpr int64_t kMax = int64_t{1} << 40;
  MutantSet s;
  s.model_source = meta.at("model");
  s.arch = meta.at("arch");
  s.model_fingerprint = meta.at("model_fingerprint");
  try {
    s.op = parse_mutation_operator(meta.at("operator"));
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  s.gamma = meta.real("gamma", 0, 1);
  VETO_CHECK(s.gamma > 0, path, ": metadata 'gamma' must be > 0");
  s.seed = meta.unsigned_integer("seed");
  s.scope = meta.strings("scope");
  s.filters_per_mutant = meta.integer("filters_per_mutant", 1, kMax);
  s.accept_ratio = meta.real("accept_ratio", 0, 1);
  s.acceptance_data = meta.at("acceptance_data");
  s.acceptance_count = meta.integer("acceptance_count", 0, kMax);
  s.original_accuracy = meta.real("original_accuracy", 0, 1);
  s.draws = meta.integer("draws", 0, kMax);
  s.rejected = meta.integer("rejected", 0, kMax);
  const int64_t count = meta.integer("count", 0, kMax);
  const std::vector<std::string> layers = meta.strings("layers");
  const auto layer_count = static_cast<int64_t>(layers.size());

  const std::vector<int64_t> draws = int_tensor(f, "draw", count);
  const std::vector<int64_t> correct = int_tensor(f, "correct", count);
  const std::vector<int64_t> offsets = int_tensor(f, "edit_offsets", count + 1);
  const int64_t edits = offsets.back();
  VETO_CHECK(offsets[0] == 0 && edits >= 0 && edits <= kMax, path, ": tensor 'edit_offsets' must start at 0");
  for (int64_t m = 0; m < count; ++m)
    VETO_CHECK(offsets[static_cast<size_t>(m)] <= offsets[static_cast<size_t>(m) + 1], path,
               ": tensor 'edit_offsets' decreases at ", m);
  const std::vector<int64_t> edit_layer = int_tensor(f, "edit_layer", edits);
  const std::vector<int64_t> edit_filter = int_tensor(f, "edit_filter", edits);
  const std::vector<int64_t> sizes = int_tensor(f, "layer_filter_size", layer_count);
  const SafeTensor& vt = f.get("values");
  VETO_CHECK(vt.dtype == "F32" && vt.shape.rank() == 1, path, ": tensor 'values' must be a 1-D F32 tensor");
  int64_t needed = 0;
  for (int64_t e = 0; e < edits; ++e) {
    const int64_t l = edit_layer[static_cast<size_t>(e)];
    VETO_CHECK(l >= 0 && l < layer_count, path, ": edit ", e, " names layer ", l, " of ", layer_count);
    VETO_CHECK(edit_filter[static_cast<size_t>(e)] >= 0, path, ": edit ", e, " has a negative filter index");
    const int64_t size = sizes[static_cast<size_t>(l)];
    VETO_CHECK(size > 0 && size <= kMax, path, ": layer '", layers[static_cast<size_t>(l)], "' has filter size ", size);
    needed += size;
    VETO_CHECK(needed <= kMax, path, ": the edits need too many values");
  }
  VETO_CHECK(vt.shape[0] == needed, path, ": tensor 'values' holds ", vt.shape[0], " values, the edits need ", needed);
  VETO_CHECK(count == 0 || s.draws >= count, path, ": ", count, " mutants from ", s.draws, " draws");
  const Tensor values = vt.to_float();
  for (int64_t i = 0; i < values.numel(); ++i)
    VETO_CHECK(std::isfinite(values[i]), path, ": tensor 'values' has a non-finite value at index ", i);

  int64_t at = 0;
  for (int64_t m = 0; m < count; ++m) {
    Mutant mutant;
    mutant.draw = draws[static_cast<size_t>(m)];
    mutant.correct = correct[static_cast<size_t>(m)];
    VETO_CHECK(mutant.correct <= s.acceptance_count, path, ": mutant ", m, " classifies ", mutant.correct, " of ",
               s.acceptance_count, " acceptance inputs correctly");
    for (int64_t e = offsets[static_cast<size_t>(m)]; e < offsets[static_cast<size_t>(m) + 1]; ++e) {
      const auto l = static_cast<size_t>(edit_layer[static_cast<size_t>(e)]);
      FilterEdit edit;
      edit.layer = layers[l];
      edit.filter = edit_filter[static_cast<size_t>(e)];
      edit.values.assign(values.data() + at, values.data() + at + sizes[l]);
      at += sizes[l];
      mutant.edits.push_back(std::move(edit));
    }
    s.mutants.push_back(std::move(mutant));
  }
  return s;
}

std::string mutant_set_fingerprint(const MutantSet& set) {
  Fnv1a64 h;
  h.text(set.model_fingerprint);
  h.text(mutation_operator_name(set.op));
  for (const Mutant& m : set.mutants) {
    h.bytes(&m.draw, sizeof m.draw);
    for (const FilterEdit& e : m.edits) {
      h.text(e.layer);
      h.bytes(&e.filter, sizeof e.filter);
      h.bytes(e.values.data(), e.values.size() * sizeof(float));
    }
  }
  return h.hex();
}

std::vector<WeightDelta> resolve_mutant_set(const Model& model, const MutantSet& set, const std::string& source) {
  const std::string fingerprint = model_fingerprint(model);
  VETO_CHECK(fingerprint == set.model_fingerprint, source, " was built for model '", set.model_source, "' (",
             set.arch, ", ", set.model_fingerprint, "), not for model '", model.source, "' (", model.arch, ", ",
             fingerprint, ")");
  std::vector<WeightDelta> out;
  for (const Mutant& m : set.mutants) {
    try {
      out.push_back(resolve_mutant(model, m));
    } catch (const Error& e) {
      fail(source, ": ", e.what());
    }
  }
  return out;
}

}  // namespace veto
