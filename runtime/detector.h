// The detector: a small binary classifier over an input's features that scores how likely
// the model's prediction is wrong (label 1 = wrong). Trained in C++ on the training split
// only: features standardized with the training split's mean and standard deviation,
// optional class weighting (errors are rare), fixed seeds.
//   logistic: one sigmoid unit (the cheap baseline), Adam on binary cross-entropy + L2.
//   mlp: Dense(200, relu) - Dropout(0.5) - Dense(200, relu) - Dropout(0.5) - Dense(1, sigmoid)
//        (the paper's detector), Adam lr 1e-3 on binary cross-entropy.
// The paper's two-stage combination is two of these: an MLP on conductance, then a small
// MLP (10 - 10 - dropout - 1) on [LCR, the first one's score] (see runtime/detection.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veto {

struct DetectorConfig {
  std::string kind = "mlp";          // "logistic" | "mlp"
  std::vector<int> hidden{200, 200};  // mlp hidden widths
  double dropout = 0.5;
  int epochs = 40;
  int batch = 64;
  double learning_rate = 1e-3;
  double l2 = 0;                      // weight decay on the weights (not the biases)
  bool class_weight = true;           // weight each class by n / (2 n_class)
  uint64_t seed = 0;
};

// A dense row-major matrix of feature rows.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;
  const double* row(int64_t r) const { return values.data() + r * cols; }
};

class Detector {
 public:
  Detector() = default;
  // Trains on x (n x d) with labels y (true = wrong prediction). Throws when a class is missing.
  static Detector train(const Matrix& x, const std::vector<bool>& y, const DetectorConfig& config);
  // Probability that each row's prediction is wrong.
  std::vector<double> score(const Matrix& x) const;

  int64_t inputs() const { return static_cast<int64_t>(mean_.size()); }
  const DetectorConfig& config() const { return config_; }

  // The parameters as named tensors (mean, std, layer<i>.weight / .bias) for the detector file.
  struct Tensor1 {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  std::vector<Tensor1> parameters() const;
  static Detector from_parameters(const DetectorConfig& config, const std::vector<Tensor1>& params,
                                  const std::string& source);

 private:
  struct Layer {
    int64_t in = 0, out = 0;
    std::vector<double> w, b;  // w: out x in
  };
  DetectorConfig config_;
  std::vector<double> mean_, inv_std_;
  std::vector<Layer> layers_;  // hidden layers (ReLU), then the output unit (sigmoid)
};

}  // namespace veto
