// Error detection on top of a features file: the seeded stratified split, the signals
// (a raw score such as MSP or LCR, or a detector trained on feature groups), the detector
// file, and the evaluation of every signal with the metrics of runtime/metrics.h.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/detector.h"
#include "runtime/features.h"
#include "runtime/metrics.h"

namespace veto {

// Stratified by right/wrong, seeded: the same inputs land in the same part for the same
// seed and labels. Shares are of each class; test gets the rest.
struct Split {
  std::vector<int64_t> train, validation, test;
};
Split stratified_split(const std::vector<bool>& wrong, double train_share, double validation_share, uint64_t seed);

// Feature groups: "msp", "max_logit", "margin", "entropy", "energy", "doctor" (one softmax
// score each), "softmax" (all six), "lcr", "conductance" (every layer's channels), or
// "conductance.<layer>". The rows' features, groups concatenated in order; throws naming a
// group the file lacks.
Matrix feature_matrix(const FeatureSet& f, const std::vector<std::string>& groups, const std::vector<int64_t>& rows);
// "conductance+lcr" -> {"conductance", "lcr"}
std::vector<std::string> parse_groups(const std::string& spec);

// A trained error detector over feature groups: one classifier, or the paper's two stages
// (an MLP on conductance, then a small MLP on [LCR, its score], trained on out-of-fold
// scores of the first).
struct ErrorDetector {
  std::string kind;                 // "logistic" | "mlp" | "two-stage"
  std::vector<std::string> groups;  // what it reads (two-stage: conductance groups + "lcr")
  Detector first, second;           // second: two-stage only
  double threshold = 0.5;           // cancel when score >= threshold (Youden's J on validation)
  std::map<std::string, std::string> provenance;  // model/mutant fingerprints, layers, steps, ...

  std::vector<double> score(const FeatureSet& f, const std::vector<int64_t>& rows) const;
  // The groups the first (or only) classifier reads: two-stage leaves LCR to the second.
  std::vector<std::string> first_groups() const;
  bool reads(const std::string& group_prefix) const;  // some group starts with it ("lcr", "conductance")
};
// Trains on split.train; the threshold maximises Youden's J on split.validation. Records
// the first classifier's column count as provenance "feature_columns".
ErrorDetector train_error_detector(const FeatureSet& f, const std::string& kind, const std::vector<std::string>& groups,
                                   const Split& split, const DetectorConfig& config);

// The detector file, "veto-detector/1" (layout in the README).
void save_error_detector(const ErrorDetector& d, const std::string& path);
ErrorDetector load_error_detector(const std::string& path);
// The same checks on a file already read (load_error_detector = read + parse).
ErrorDetector parse_error_detector(const SafetensorsFile& file);
// Checks that features `f` were made the way the detector's training features were (same
// model; the same mutant set when it reads LCR; the same rule, steps and columns when it
// reads conductance); the message names both.
void check_detector_fits(const ErrorDetector& d, const FeatureSet& f, const std::string& detector_source,
                         const std::string& features_source);

// Every metric of one signal on the test part, with its threshold from the validation part.
struct SignalReport {
  std::string name, method;  // "MSP", "raw score" / "mlp" / ...
  double auroc = 0;
  Interval auroc_ci;
  double aupr_error = 0, fpr_at_95 = 0, aurc = 0, eaurc = 0;
  double threshold = 0;
  double accepted_accuracy = 0, cancelled = 0;  // at the threshold, on test
  double right_recall = 0, wrong_recall = 0, mean_recall = 0;
  std::vector<RocPoint> roc;
  std::vector<RiskCoveragePoint> risk_coverage;
};
// `scores` for every input (higher = more likely wrong); the split's validation part picks
// the threshold, its test part gives the metrics.
SignalReport report_signal(const std::string& name, const std::string& method, const std::vector<double>& scores,
                           const std::vector<bool>& wrong, const Split& split, uint64_t seed);

// Every signal of a features file on one split: each softmax score and LCR as raw scores,
// and detectors trained on the training part: conductance (MLP), conductance + LCR (the
// paper's two stages, and one MLP), everything (MLP and logistic regression).
struct EvaluationOptions {
  double train_share = 0.6, validation_share = 0.2;
  uint64_t seed = 0;
  DetectorConfig config;
};
struct Evaluation {
  Split split;
  int64_t errors_train = 0, errors_validation = 0, errors_test = 0;
  std::vector<SignalReport> signals;
};
Evaluation evaluate_signals(const FeatureSet& f, const EvaluationOptions& options);
// The wrong-prediction flags of a labelled features file (throws naming an unlabelled input).
std::vector<bool> wrong_predictions(const FeatureSet& f);

}  // namespace veto
