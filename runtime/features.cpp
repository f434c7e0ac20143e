#include "runtime/features.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"
#include "runtime/softmax_scores.h"

namespace veto {
namespace {

constexpr const char* kFormat = "veto-features/1";

Tensor as_tensor(const std::vector<float>& v, Shape shape) { return Tensor(std::move(shape), v); }

std::vector<float> float_rows(const SafetensorsFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const SafeTensor& t = f.get(name);
  const Shape want = cols < 0 ? Shape{rows} : Shape{rows, cols};
  VETO_CHECK(t.shape == want, f.source, ": tensor '", name, "' has shape ", t.shape.str(), ", expected ", want.str());
  const Tensor v = t.to_float();
  for (int64_t i = 0; i < v.numel(); ++i)
    VETO_CHECK(std::isfinite(v[i]), f.source, ": tensor '", name, "' has a non-finite value at index ", i);
  return v.values();
}

std::vector<int64_t> int_rows(const SafetensorsFile& f, const std::string& name, int64_t rows) {
  const SafeTensor& t = f.get(name);
  VETO_CHECK(t.shape == Shape{rows} && t.dtype == "I64", f.source, ": tensor '", name, "' must be I64 of shape (",
             rows, "), got ", t.dtype, " ", t.shape.str());
  return t.to_int64();
}

}  // namespace

void FeatureSet::append(const FeatureSet& more) {
  VETO_CHECK(more.layers == layers && more.classes == classes && more.has_lcr == has_lcr,
             "features: appending rows of another layout");
  logits.insert(logits.end(), more.logits.begin(), more.logits.end());
  prediction.insert(prediction.end(), more.prediction.begin(), more.prediction.end());
  label.insert(label.end(), more.label.begin(), more.label.end());
  softmax.insert(softmax.end(), more.softmax.begin(), more.softmax.end());
  for (size_t l = 0; l < layers.size(); ++l)
    conductance[l].insert(conductance[l].end(), more.conductance[l].begin(), more.conductance[l].end());
  lcr.insert(lcr.end(), more.lcr.begin(), more.lcr.end());
  lcr_changes.insert(lcr_changes.end(), more.lcr_changes.begin(), more.lcr_changes.end());
}

FeatureSet gather_features(const Communicator& comm, const FeatureSet& mine) {
  if (comm.size() == 1) return mine;
  FeatureSet all = mine;
  auto gather = [&](auto& field, const auto& local) {
    auto rows = gather_rows(comm, local);
    if (comm.root()) field = std::move(rows);
  };
  gather(all.logits, mine.logits);
  gather(all.prediction, mine.prediction);
  gather(all.label, mine.label);
  gather(all.softmax, mine.softmax);
  for (size_t l = 0; l < mine.layers.size(); ++l) gather(all.conductance[l], mine.conductance[l]);
  gather(all.lcr, mine.lcr);
  gather(all.lcr_changes, mine.lcr_changes);
  return all;
}

void save_features(const FeatureSet& f, const std::string& path, bool complete) {
  const int64_t n = f.count();
  SafetensorsFile file;
  file.metadata = f.metadata;
  file.metadata["format"] = kFormat;
  file.metadata["complete"] = complete ? "true" : "false";
  file.metadata["count"] = std::to_string(n);
  file.metadata["layers"] = nlohmann::json(f.layers).dump();
  std::vector<std::string> names;
  for (int s = 0; s < kSoftmaxScoreCount; ++s) names.push_back(softmax_score_name(s));
  file.metadata["softmax_scores"] = nlohmann::json(names).dump();
  file.metadata["lcr"] = f.has_lcr ? "true" : "false";
  file.tensors.push_back(make_f32("logits", as_tensor(f.logits, Shape{n, f.classes})));
  file.tensors.push_back(make_i64("prediction", Shape{n}, f.prediction));
  file.tensors.push_back(make_i64("label", Shape{n}, f.label));
  file.tensors.push_back(make_f32("softmax_scores", as_tensor(f.softmax, Shape{n, kSoftmaxScoreCount})));
  for (size_t l = 0; l < f.layers.size(); ++l)
    file.tensors.push_back(make_f32("conductance." + f.layers[l], as_tensor(f.conductance[l], Shape{n, f.channels[l]})));
  if (f.has_lcr) {
    file.tensors.push_back(make_f32("lcr", as_tensor(f.lcr, Shape{n})));
    file.tensors.push_back(make_i64("lcr_changes", Shape{n}, f.lcr_changes));
  }
  write_safetensors(path, file);
}

FeatureSet load_features(const std::string& path, bool* complete) { return parse_features(read_safetensors(path), complete); }

FeatureSet parse_features(const SafetensorsFile& file, bool* complete) {
  const std::string& path = file.source;
  check_veto_format(file, kFormat, "features");
  auto meta = [&](const std::string& key) -> const std::string& { return veto_metadata(file, key, "features"); };
  FeatureSet f;
  f.metadata = file.metadata;
  for (const char* key : {"format", "complete", "count", "layers", "softmax_scores", "lcr"}) f.metadata.erase(key);
  if (complete) *complete = meta("complete") == "true";
  f.has_lcr = meta("lcr") == "true";
  const nlohmann::json layers = parse_metadata_json(meta("layers"), "layers", path);
  VETO_CHECK(layers.is_array(), path, ": metadata 'layers' is not an array");
  for (const auto& l : layers) {
    VETO_CHECK(l.is_string(), path, ": metadata 'layers' holds a non-string");
    f.layers.push_back(l.get<std::string>());
  }
  const SafeTensor& logits = file.get("logits");
  VETO_CHECK(logits.shape.rank() == 2 && logits.shape[1] >= 2, path, ": tensor 'logits' has shape ",
             logits.shape.str(), ", expected (N, classes >= 2)");
  const int64_t n = logits.shape[0];
  VETO_CHECK(meta("count") == std::to_string(n), path, ": metadata 'count' is ", meta("count"), " but 'logits' has ",
             n, " rows");
  f.classes = logits.shape[1];
  f.logits = float_rows(file, "logits", n, f.classes);
  f.prediction = int_rows(file, "prediction", n);
  f.label = int_rows(file, "label", n);
  for (int64_t i = 0; i < n; ++i) {
    VETO_CHECK(f.prediction[static_cast<size_t>(i)] >= 0 && f.prediction[static_cast<size_t>(i)] < f.classes, path,
               ": prediction ", i, " is not a class");
    VETO_CHECK(f.label[static_cast<size_t>(i)] >= -1 && f.label[static_cast<size_t>(i)] < f.classes, path,
               ": label ", i, " is not a class or -1");
  }
  f.softmax = float_rows(file, "softmax_scores", n, kSoftmaxScoreCount);
  for (const std::string& l : f.layers) {
    const SafeTensor& t = file.get("conductance." + l);
    VETO_CHECK(t.shape.rank() == 2 && t.shape[0] == n && t.shape[1] > 0, path, ": tensor 'conductance.", l,
               "' has shape ", t.shape.str(), ", expected (", n, ", channels)");
    f.channels.push_back(t.shape[1]);
    f.conductance.push_back(float_rows(file, "conductance." + l, n, t.shape[1]));
  }
  if (f.has_lcr) {
    f.lcr = float_rows(file, "lcr", n, -1);
    f.lcr_changes = int_rows(file, "lcr_changes", n);
  }
  return f;
}

std::map<std::string, std::string> feature_provenance(const Model& model, const MutantSet* mutants,
                                                      const std::string& mutants_path, const FeatureOptions& options) {
  return {{"model", model.source},
          {"arch", model.arch},
          {"model_fingerprint", model_fingerprint(model)},
          {"mutants", mutants ? mutants_path : ""},
          {"mutants_fingerprint", mutants ? mutant_set_fingerprint(*mutants) : ""},
          {"mutant_count", std::to_string(mutants ? mutants->mutants.size() : 0)},
          {"rule", conductance_rule_name(options.rule)},
          {"steps", std::to_string(options.steps)},
          {"classes", nlohmann::json(model.classes).dump()}};
}

FeatureExtractor::FeatureExtractor(Model& model, Backend& backend, const std::vector<WeightDelta>& mutants,
                                   const FeatureOptions& options, int64_t batch)
    : model_(model), mutants_(mutants), options_(options), runner_(model, backend, batch) {
  if (!options.layers.empty()) {
    ConductanceOptions c;
    c.layers = options.layers;
    c.rule = options.rule;
    c.steps = options.steps;
    c.max_memory = options.max_memory;
    conductance_ = std::make_unique<ConductanceEngine>(model, backend, c);
  }
}

FeatureExtractor::~FeatureExtractor() = default;

FeatureSet FeatureExtractor::layout() const {
  FeatureSet f;
  f.layers = options_.layers;
  f.classes = model_.graph.node(model_.graph.output()).shape.numel();
  for (const std::string& l : options_.layers) f.channels.push_back(model_.graph.node(model_.graph.find(l)).shape[1]);
  f.conductance.resize(f.layers.size());
  f.has_lcr = !mutants_.empty();
  return f;
}

FeatureSet FeatureExtractor::run(const float* images, int64_t count, const std::vector<int>& labels) {
  VETO_CHECK(static_cast<int64_t>(labels.size()) == count, "features: ", labels.size(), " labels for ", count,
             " images");
  FeatureSet f = layout();
  const std::vector<int> predictions = runner_.load(images, count);
  const Tensor& logits = runner_.logits();
  f.logits = logits.values();
  for (int64_t i = 0; i < count; ++i) {
    f.prediction.push_back(predictions[static_cast<size_t>(i)]);
    f.label.push_back(labels[static_cast<size_t>(i)]);
    for (double s : softmax_scores(logits.data() + i * f.classes, f.classes)) f.softmax.push_back(static_cast<float>(s));
  }
  if (conductance_) {
    // Attributed to the class the model predicts in this pipeline (the same as LCR's).
    const ConductanceResult r = conductance_->run(images, count, predictions);
    for (size_t l = 0; l < f.layers.size(); ++l) f.conductance[l] = r.conductance[l].values();
  }
  if (!mutants_.empty()) {
    f.lcr_changes.assign(static_cast<size_t>(count), 0);
    for (const WeightDelta& d : mutants_) {
      const std::vector<int> p = runner_.predict(d);
      for (int64_t i = 0; i < count; ++i)
        f.lcr_changes[static_cast<size_t>(i)] += p[static_cast<size_t>(i)] != predictions[static_cast<size_t>(i)];
    }
    for (int64_t c : f.lcr_changes) f.lcr.push_back(static_cast<float>(c) / static_cast<float>(mutants_.size()));
  }
  return f;
}

}  // namespace veto
