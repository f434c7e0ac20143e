#include "runtime/detection.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"
#include "runtime/random.h"
#include "runtime/softmax_scores.h"

namespace veto {

Split stratified_split(const std::vector<bool>& wrong, double train_share, double validation_share, uint64_t seed) {
  VETO_CHECK(train_share > 0 && validation_share > 0 && train_share + validation_share < 1,
             "split: train and validation shares must be positive and leave a test part, got ", train_share, " and ",
             validation_share);
  Split s;
  Rng rng(seed);
  for (bool cls : {false, true}) {
    std::vector<int64_t> members;
    for (size_t i = 0; i < wrong.size(); ++i)
      if (wrong[i] == cls) members.push_back(static_cast<int64_t>(i));
    for (size_t i = members.size(); i > 1; --i) std::swap(members[i - 1], members[rng.below(i)]);
    const auto n = static_cast<double>(members.size());
    const auto train = static_cast<size_t>(std::llround(train_share * n));
    const auto validation = static_cast<size_t>(std::llround(validation_share * n));
    VETO_CHECK(members.size() >= 3 && train + validation < members.size(), "split: only ", members.size(), " ",
               cls ? "wrong" : "right", " predictions; each part needs some of them");
    s.train.insert(s.train.end(), members.begin(), members.begin() + static_cast<std::ptrdiff_t>(train));
    s.validation.insert(s.validation.end(), members.begin() + static_cast<std::ptrdiff_t>(train),
                        members.begin() + static_cast<std::ptrdiff_t>(train + validation));
    s.test.insert(s.test.end(), members.begin() + static_cast<std::ptrdiff_t>(train + validation), members.end());
  }
  for (auto* part : {&s.train, &s.validation, &s.test}) std::sort(part->begin(), part->end());
  return s;
}

std::vector<std::string> parse_groups(const std::string& spec) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = spec.find('+', start);
    const std::string g = spec.substr(start, end == std::string::npos ? std::string::npos : end - start);
    VETO_CHECK(!g.empty(), "feature groups '", spec, "': an empty group");
    out.push_back(g);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

Matrix feature_matrix(const FeatureSet& f, const std::vector<std::string>& groups, const std::vector<int64_t>& rows) {
  // Each group as (source vector, columns per row, first column, column count).
  struct Part {
    const std::vector<float>* data;
    int64_t stride, first, count;
  };
  std::vector<Part> parts;
  for (const std::string& g : groups) {
    bool found = false;
    for (int s = 0; s < kSoftmaxScoreCount; ++s)
      if (g == softmax_score_name(s)) {
        parts.push_back({&f.softmax, kSoftmaxScoreCount, s, 1});
        found = true;
      }
    if (g == "softmax") {
      parts.push_back({&f.softmax, kSoftmaxScoreCount, 0, kSoftmaxScoreCount});
      found = true;
    } else if (g == "lcr") {
      VETO_CHECK(f.has_lcr, "feature group 'lcr': the features hold no LCR (made without --mutants)");
      parts.push_back({&f.lcr, 1, 0, 1});
      found = true;
    } else if (g == "conductance" || g.rfind("conductance.", 0) == 0) {
      for (size_t l = 0; l < f.layers.size(); ++l)
        if (g == "conductance" || g == "conductance." + f.layers[l]) {
          parts.push_back({&f.conductance[l], f.channels[l], 0, f.channels[l]});
          found = true;
        }
      VETO_CHECK(found, "feature group '", g, "': the features hold no such conductance layer");
    }
    VETO_CHECK(found, "unknown feature group '", g,
               "' (msp, max_logit, margin, entropy, energy, doctor, softmax, lcr, conductance, conductance.<layer>)");
  }
  Matrix m;
  m.rows = static_cast<int64_t>(rows.size());
  for (const Part& p : parts) m.cols += p.count;
  m.values.reserve(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r : rows) {
    VETO_CHECK(r >= 0 && r < f.count(), "features: row ", r, " out of range");
    for (const Part& p : parts)
      for (int64_t c = 0; c < p.count; ++c) m.values.push_back((*p.data)[static_cast<size_t>(r * p.stride + p.first + c)]);
  }
  return m;
}

namespace {

// The two-stage detector's second input: [LCR, the first stage's score] per row.
Matrix second_stage_matrix(const FeatureSet& f, const std::vector<int64_t>& rows, const std::vector<double>& first) {
  VETO_CHECK(f.has_lcr, "the two-stage detector's second stage reads LCR, and these features have none");
  Matrix m;
  m.rows = static_cast<int64_t>(rows.size());
  m.cols = 2;
  for (size_t i = 0; i < rows.size(); ++i) {
    m.values.push_back(f.lcr[static_cast<size_t>(rows[i])]);
    m.values.push_back(first[i]);
  }
  return m;
}

std::vector<bool> wrong_of(const FeatureSet& f, const std::vector<int64_t>& rows) {
  std::vector<bool> w;
  for (int64_t r : rows) {
    const int64_t label = f.label[static_cast<size_t>(r)];
    VETO_CHECK(label >= 0, "detector training needs labelled inputs: input ", r, " has no label");
    w.push_back(label != f.prediction[static_cast<size_t>(r)]);
  }
  return w;
}

}  // namespace

std::vector<std::string> ErrorDetector::first_groups() const {
  if (kind != "two-stage") return groups;
  std::vector<std::string> out;
  for (const std::string& g : groups)
    if (g != "lcr") out.push_back(g);
  return out;
}

bool ErrorDetector::reads(const std::string& group_prefix) const {
  for (const std::string& g : groups)
    if (g.rfind(group_prefix, 0) == 0) return true;
  return false;
}

std::vector<double> ErrorDetector::score(const FeatureSet& f, const std::vector<int64_t>& rows) const {
  const std::vector<double> s1 = first.score(feature_matrix(f, first_groups(), rows));
  return kind == "two-stage" ? second.score(second_stage_matrix(f, rows, s1)) : s1;
}

ErrorDetector train_error_detector(const FeatureSet& f, const std::string& kind, const std::vector<std::string>& groups,
                                   const Split& split, const DetectorConfig& config) {
  ErrorDetector d;
  d.kind = kind;
  d.groups = groups;
  VETO_CHECK(kind == "logistic" || kind == "mlp" || kind == "two-stage", "unknown detector '", kind,
             "' (logistic, mlp, two-stage)");
  VETO_CHECK(kind != "two-stage" || (std::count(groups.begin(), groups.end(), "lcr") == 1 && groups.size() >= 2),
             "a two-stage detector reads LCR and other groups, e.g. conductance+lcr");
  const std::vector<bool> y = wrong_of(f, split.train);
  const Matrix x = feature_matrix(f, d.first_groups(), split.train);
  d.provenance["feature_columns"] = std::to_string(x.cols);
  DetectorConfig c = config;
  c.kind = kind == "logistic" ? "logistic" : "mlp";
  d.first = Detector::train(x, y, c);
  if (kind == "two-stage") {
    // The second stage learns from first-stage scores on rows that stage did not train on
    // (5-fold out-of-fold over the training part, folds stratified): on its own training
    // rows an MLP's scores are over-confident and would teach the second stage to trust it.
    constexpr int kFolds = 5;
    std::vector<int> fold(split.train.size());
    int next[2] = {0, 0};
    for (size_t i = 0; i < split.train.size(); ++i) fold[i] = next[y[i]]++ % kFolds;
    std::vector<double> out_of_fold(split.train.size());
    for (int k = 0; k < kFolds; ++k) {
      std::vector<int64_t> fit_rows, held_rows;
      std::vector<bool> fit_y;
      for (size_t i = 0; i < split.train.size(); ++i)
        if (fold[i] == k) {
          held_rows.push_back(split.train[i]);
        } else {
          fit_rows.push_back(split.train[i]);
          fit_y.push_back(y[i]);
        }
      DetectorConfig fold_config = c;
      fold_config.seed = config.seed + 2 + static_cast<uint64_t>(k);
      const Detector m = Detector::train(feature_matrix(f, d.first_groups(), fit_rows), fit_y, fold_config);
      const std::vector<double> held = m.score(feature_matrix(f, d.first_groups(), held_rows));
      for (size_t i = 0, h = 0; i < split.train.size(); ++i)
        if (fold[i] == k) out_of_fold[i] = held[h++];
    }
    DetectorConfig small = c;
    small.hidden = {10, 10};
    small.seed = config.seed + 1;
    d.second = Detector::train(second_stage_matrix(f, split.train, out_of_fold), y, small);
  }
  d.threshold = youden_threshold(d.score(f, split.validation), wrong_of(f, split.validation));
  return d;
}

// --- the detector file ---------------------------------------------------------------------

namespace {

constexpr const char* kDetectorFormat = "veto-detector/1";

nlohmann::json config_json(const DetectorConfig& c) {
  return {{"kind", c.kind},     {"hidden", c.hidden},        {"dropout", c.dropout}, {"epochs", c.epochs},
          {"batch", c.batch},   {"learning_rate", c.learning_rate}, {"l2", c.l2},    {"class_weight", c.class_weight},
          {"seed", c.seed}};
}

// An integer in [lo, hi]. (nlohmann's get<int>() casts a float, or a number out of int's
// range, with undefined behaviour.)
int64_t integer_in(const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi, const std::string& source) {
  VETO_CHECK(v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(hi)),
             source, ": detector ", what, " is not an integer in [", lo, ", ", hi, "]");
  const auto x = v.get<int64_t>();
  VETO_CHECK(x >= lo && x <= hi, source, ": detector ", what, " ", x, " is not in [", lo, ", ", hi, "]");
  return x;
}

// A number in [lo, hi) (hi excluded when `open_top`).
double number_in(const nlohmann::json& v, const std::string& what, double lo, double hi, bool open_top,
                 const std::string& source) {
  const double x = v.is_number() ? v.get<double>() : std::nan("");
  VETO_CHECK(x >= lo && (open_top ? x < hi : x <= hi), source, ": detector ", what, " is not a number in [", lo, ", ",
             hi, open_top ? ")" : "]");
  return x;
}

DetectorConfig config_of(const nlohmann::json& j, const std::string& source) {
  try {
    DetectorConfig c;
    c.kind = j.at("kind").get<std::string>();
    const nlohmann::json& hidden = j.at("hidden");
    VETO_CHECK(hidden.is_array() && hidden.size() <= 16, source, ": detector 'hidden' must list at most 16 widths");
    c.hidden.clear();
    for (const auto& h : hidden) c.hidden.push_back(static_cast<int>(integer_in(h, "hidden width", 1, 100000, source)));
    c.dropout = number_in(j.at("dropout"), "dropout", 0, 1, true, source);
    c.epochs = static_cast<int>(integer_in(j.at("epochs"), "epochs", 0, 1000000, source));
    c.batch = static_cast<int>(integer_in(j.at("batch"), "batch", 1, 1 << 20, source));
    c.learning_rate = number_in(j.at("learning_rate"), "learning_rate", 0, 1e6, false, source);
    c.l2 = number_in(j.at("l2"), "l2", 0, 1e6, false, source);
    c.class_weight = j.at("class_weight").get<bool>();
    const nlohmann::json& seed = j.at("seed");
    VETO_CHECK(seed.is_number_unsigned() || (seed.is_number_integer() && seed.get<int64_t>() >= 0), source,
               ": detector seed is not a non-negative integer");
    c.seed = seed.get<uint64_t>();
    VETO_CHECK(c.kind == "logistic" || c.kind == "mlp", source, ": unknown detector kind '", c.kind, "'");
    return c;
  } catch (const nlohmann::json::exception&) {
    fail(source, ": detector configuration is malformed");
  }
}

void put(SafetensorsFile& file, const std::string& prefix, const Detector& d) {
  for (const Detector::Tensor1& t : d.parameters()) {
    Tensor v(Shape(std::vector<int64_t>(t.shape)), t.values);
    file.tensors.push_back(make_f32(prefix + t.name, v));
  }
}

Detector take(const SafetensorsFile& file, const std::string& prefix, const DetectorConfig& c) {
  std::vector<Detector::Tensor1> params;
  for (const SafeTensor& t : file.tensors)
    if (t.name.rfind(prefix, 0) == 0) {
      const Tensor v = t.to_float();
      params.push_back({t.name.substr(prefix.size()), t.shape.dims, v.values()});
    }
  return Detector::from_parameters(c, params, file.source);
}

}  // namespace

void save_error_detector(const ErrorDetector& d, const std::string& path) {
  SafetensorsFile file;
  file.metadata = d.provenance;
  file.metadata["format"] = kDetectorFormat;
  file.metadata["kind"] = d.kind;
  file.metadata["groups"] = nlohmann::json(d.groups).dump();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d.threshold);
  file.metadata["threshold"] = buf;
  file.metadata["first"] = config_json(d.first.config()).dump();
  put(file, "first.", d.first);
  if (d.kind == "two-stage") {
    file.metadata["second"] = config_json(d.second.config()).dump();
    put(file, "second.", d.second);
  }
  write_safetensors(path, file);
}

ErrorDetector load_error_detector(const std::string& path) { return parse_error_detector(read_safetensors(path)); }

ErrorDetector parse_error_detector(const SafetensorsFile& file) {
  const std::string& path = file.source;
  check_veto_format(file, kDetectorFormat, "detector");
  auto meta = [&](const std::string& key) -> const std::string& { return veto_metadata(file, key, "detector"); };
  ErrorDetector d;
  d.provenance = file.metadata;
  for (const char* key : {"format", "kind", "groups", "threshold", "first", "second"}) d.provenance.erase(key);
  d.kind = meta("kind");
  VETO_CHECK(d.kind == "logistic" || d.kind == "mlp" || d.kind == "two-stage", path, ": unknown detector kind '",
             d.kind, "'");
  const nlohmann::json groups = parse_metadata_json(meta("groups"), "groups", path);
  VETO_CHECK(groups.is_array() && !groups.empty(), path, ": metadata 'groups' must be a non-empty array");
  for (const auto& g : groups) {
    VETO_CHECK(g.is_string(), path, ": metadata 'groups' holds a non-string");
    d.groups.push_back(g.get<std::string>());
  }
  char* end = nullptr;
  d.threshold = std::strtod(meta("threshold").c_str(), &end);
  VETO_CHECK(*end == '\0' && !std::isnan(d.threshold), path, ": metadata 'threshold' is not a number");
  d.first = take(file, "first.", config_of(parse_metadata_json(meta("first"), "first", path), path));
  if (d.kind == "two-stage") {
    // Its second stage reads LCR: without an "lcr" group no LCR would be computed for it.
    VETO_CHECK(std::count(d.groups.begin(), d.groups.end(), "lcr") == 1 && d.groups.size() >= 2, path,
               ": a two-stage detector reads 'lcr' once and other groups, got ", meta("groups"));
    d.second = take(file, "second.", config_of(parse_metadata_json(meta("second"), "second", path), path));
    VETO_CHECK(d.second.inputs() == 2, path, ": the second stage must read 2 features");
  }
  return d;
}

void check_detector_fits(const ErrorDetector& d, const FeatureSet& f, const std::string& detector_source,
                         const std::string& features_source) {
  std::vector<std::string> keys{"model_fingerprint"};
  if (d.reads("lcr")) keys.push_back("mutants_fingerprint");
  if (d.reads("conductance")) keys.insert(keys.end(), {"rule", "steps"});
  for (const std::string& key : keys) {
    const auto a = d.provenance.find(key);
    const auto b = f.metadata.find(key);
    const std::string want = a == d.provenance.end() ? "" : a->second, got = b == f.metadata.end() ? "" : b->second;
    VETO_CHECK(want == got, detector_source, " was trained on features with ", key, " '", want, "' (model '",
               d.provenance.count("model") ? d.provenance.at("model") : "?", "'), but ", features_source, " has '",
               got, "' (model '", f.metadata.count("model") ? f.metadata.at("model") : "?", "')");
  }
  const auto expected = d.provenance.find("feature_columns");
  if (expected != d.provenance.end()) {
    const Matrix probe = feature_matrix(f, d.first_groups(), {});
    VETO_CHECK(std::to_string(probe.cols) == expected->second, detector_source, " reads ", expected->second,
               " features, ", features_source, " gives ", probe.cols, " for groups ", nlohmann::json(d.groups).dump());
  }
}

// --- one signal's report -------------------------------------------------------------------

SignalReport report_signal(const std::string& name, const std::string& method, const std::vector<double>& scores,
                           const std::vector<bool>& wrong, const Split& split, uint64_t seed) {
  auto pick = [](const auto& v, const std::vector<int64_t>& rows) {
    std::remove_const_t<std::remove_reference_t<decltype(v)>> out;
    for (int64_t r : rows) out.push_back(v[static_cast<size_t>(r)]);
    return out;
  };
  const std::vector<double> vs = pick(scores, split.validation), ts = pick(scores, split.test);
  const std::vector<bool> vw = pick(wrong, split.validation), tw = pick(wrong, split.test);
  SignalReport r;
  r.name = name;
  r.method = method;
  r.auroc = auroc(ts, tw);
  r.auroc_ci = auroc_bootstrap(ts, tw, 1000, 0.95, seed);
  r.aupr_error = average_precision(ts, tw);
  r.fpr_at_95 = fpr_at_negatives_kept(ts, tw, 0.95);
  r.aurc = aurc(ts, tw);
  const double errors = static_cast<double>(std::count(tw.begin(), tw.end(), true));
  r.eaurc = r.aurc - optimal_aurc(errors / static_cast<double>(tw.size()));
  r.threshold = youden_threshold(vs, vw);
  double accepted = 0, accepted_right = 0, right = 0, right_kept = 0, wrong_cancelled = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const bool cancel = ts[i] >= r.threshold;
    if (!cancel) {
      ++accepted;
      accepted_right += !tw[i];
    }
    if (!tw[i]) {
      ++right;
      right_kept += !cancel;
    } else {
      wrong_cancelled += cancel;
    }
  }
  r.accepted_accuracy = accepted > 0 ? accepted_right / accepted : 0.0;
  r.cancelled = 1 - accepted / static_cast<double>(ts.size());
  r.right_recall = right_kept / right;
  r.wrong_recall = wrong_cancelled / errors;
  r.mean_recall = (r.right_recall + r.wrong_recall) / 2;
  r.roc = roc_curve(ts, tw);
  r.risk_coverage = risk_coverage_curve(ts, tw);
  return r;
}

std::vector<bool> wrong_predictions(const FeatureSet& f) {
  std::vector<int64_t> all(static_cast<size_t>(f.count()));
  for (int64_t i = 0; i < f.count(); ++i) all[static_cast<size_t>(i)] = i;
  return wrong_of(f, all);
}

Evaluation evaluate_signals(const FeatureSet& f, const EvaluationOptions& options) {
  const std::vector<bool> wrong = wrong_predictions(f);
  Evaluation e;
  e.split = stratified_split(wrong, options.train_share, options.validation_share, options.seed);
  auto errors = [&](const std::vector<int64_t>& rows) {
    int64_t n = 0;
    for (int64_t r : rows) n += wrong[static_cast<size_t>(r)];
    return n;
  };
  e.errors_train = errors(e.split.train);
  e.errors_validation = errors(e.split.validation);
  e.errors_test = errors(e.split.test);
  const uint64_t seed = options.seed;
  for (int s = 0; s < kSoftmaxScoreCount; ++s) {
    std::vector<double> scores;
    for (int64_t i = 0; i < f.count(); ++i)
      scores.push_back(softmax_score_error_sign(s) * f.softmax[static_cast<size_t>(i * kSoftmaxScoreCount + s)]);
    e.signals.push_back(report_signal(softmax_score_name(s), "raw score", scores, wrong, e.split, seed));
  }
  if (f.has_lcr)
    e.signals.push_back(report_signal("lcr", "raw score", std::vector<double>(f.lcr.begin(), f.lcr.end()), wrong,
                                      e.split, seed));
  std::vector<int64_t> all(static_cast<size_t>(f.count()));
  for (int64_t i = 0; i < f.count(); ++i) all[static_cast<size_t>(i)] = i;
  auto trained = [&](const std::string& name, const std::string& kind, const std::vector<std::string>& groups) {
    const ErrorDetector d = train_error_detector(f, kind, groups, e.split, options.config);
    e.signals.push_back(report_signal(name, kind, d.score(f, all), wrong, e.split, seed));
  };
  const bool conductance = !f.layers.empty();
  if (conductance) trained("conductance", "mlp", {"conductance"});
  if (conductance && f.has_lcr) {
    trained("conductance+lcr", "two-stage", {"conductance", "lcr"});
    trained("conductance+lcr", "mlp", {"conductance", "lcr"});
  }
  std::vector<std::string> everything{"softmax"};
  if (f.has_lcr) everything.push_back("lcr");
  if (conductance) everything.push_back("conductance");
  trained("all", "mlp", everything);
  trained("all", "logistic", everything);
  return e;
}

}  // namespace veto
