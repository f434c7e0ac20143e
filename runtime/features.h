// The detector's inputs for every image, from one pipeline: the model's logits and
// prediction, the free softmax scores, layer conductance at chosen layers (attributed to
// the predicted class) and the label change rate over a mutant set. Images are processed
// in batches; a FeatureSet grows batch by batch and is saved as one safetensors file (and
// reloaded to resume an interrupted run).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/conductance.h"
#include "runtime/io/safetensors.h"
#include "runtime/lcr.h"

namespace veto {

struct FeatureSet {
  // What made the features (metadata of the file; a resumed run must match it exactly).
  std::map<std::string, std::string> metadata;
  std::vector<std::string> layers;            // conductance layers, in file order
  int64_t classes = 0;
  std::vector<int64_t> channels;              // per layer
  bool has_lcr = false;
  // Per image, row-major.
  std::vector<float> logits;                  // N x classes
  std::vector<int64_t> prediction, label;     // label -1: none
  std::vector<float> softmax;                 // N x kSoftmaxScoreCount
  std::vector<std::vector<float>> conductance;  // per layer: N x channels
  std::vector<float> lcr;                     // N (when has_lcr)
  std::vector<int64_t> lcr_changes;           // N

  int64_t count() const { return static_cast<int64_t>(prediction.size()); }
  void append(const FeatureSet& more);        // rows of a batch with the same layout
};

// Every rank's rows, in rank order, at rank 0 (other ranks get their own rows back).
FeatureSet gather_features(const Communicator& comm, const FeatureSet& mine);

// "veto-features/1" safetensors (layout in the README); `complete` = every input is there
// (false marks a checkpoint of an interrupted run).
void save_features(const FeatureSet& f, const std::string& path, bool complete);
// Reads and validates a features file; `complete` tells whether it was a finished run.
FeatureSet load_features(const std::string& path, bool* complete = nullptr);
// The same checks on a file already read (load_features = read + parse).
FeatureSet parse_features(const SafetensorsFile& file, bool* complete = nullptr);

struct FeatureOptions {
  std::vector<std::string> layers;  // conductance layers; empty: none
  ConductanceRule rule = ConductanceRule::Paper;
  int steps = 10;
  size_t max_memory = size_t(2) << 30;
};

// What identifies how features were made: model (and its fingerprint), mutant set (path,
// fingerprint, count; empty without one), conductance rule and steps, the model's classes.
std::map<std::string, std::string> feature_provenance(const Model& model, const MutantSet* mutants,
                                                      const std::string& mutants_path, const FeatureOptions& options);

class FeatureExtractor {
 public:
  // `mutants` may be empty (no LCR). The model, backend and mutants must outlive the
  // extractor; the model's parameters are changed and restored while mutants run.
  FeatureExtractor(Model& model, Backend& backend, const std::vector<WeightDelta>& mutants,
                   const FeatureOptions& options, int64_t batch);
  ~FeatureExtractor();
  int64_t batch() const { return runner_.batch(); }
  // The features of `count` (<= batch) preprocessed images with their labels (-1: none).
  FeatureSet run(const float* images, int64_t count, const std::vector<int>& labels);
  // An empty set with this extractor's layout (layers, channels, classes).
  FeatureSet layout() const;

 private:
  Model& model_;
  const std::vector<WeightDelta>& mutants_;
  FeatureOptions options_;
  MutantRunner runner_;
  std::unique_ptr<ConductanceEngine> conductance_;
};

}  // namespace veto
