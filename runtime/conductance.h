// Layer conductance (integrated gradients through hidden layers; the math is in the README
// under `veto attribute`) for many layers at once: every interpolation step of a batch of
// images runs as rows of one forward + backward plan, and one backward serves every target
// layer.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/executor.h"
#include "runtime/model.h"

namespace veto {

// paper: the paper's rule (nodes k/n, k = 0..n, gradient at the upper end of each
// interval). The others are Captum's LayerConductance methods (n + 1 nodes, gradient at
// the lower end of each interval).
enum class ConductanceRule { Paper, RiemannLeft, RiemannRight, RiemannMiddle, RiemannTrapezoid, GaussLegendre };

ConductanceRule parse_conductance_rule(const std::string& name);  // throws listing the names
std::string conductance_rule_name(ConductanceRule rule);
std::vector<std::string> conductance_rule_names();

// The path nodes 0 <= alpha_0 < ... < alpha_m <= 1 of a rule with n steps, and on which end
// of each interval [alpha_j, alpha_j+1] the gradient is taken.
struct IntegrationPath {
  std::vector<double> alphas;
  bool gradient_at_upper = false;
};
IntegrationPath integration_path(ConductanceRule rule, int steps);
// Gauss-Legendre nodes on [-1, 1], ascending (numpy.polynomial.legendre.leggauss(n)[0]).
std::vector<double> gauss_legendre_nodes(int n);

struct ConductanceOptions {
  std::vector<std::string> layers;  // node names (aliases allowed)
  ConductanceRule rule = ConductanceRule::Paper;
  int steps = 10;
  Tensor baseline;            // (C,H,W) in the preprocessed space; empty = zeros
  bool maps = false;          // also return the full (C,H,W) conductance maps
  size_t max_memory = size_t(2) << 30;  // bound on the plan's activation + gradient arenas
  int64_t chunk_rows = 0;     // rows (image x step) per pass; 0 = as many as max_memory allows
};

struct ConductanceResult {
  std::vector<std::string> layers;
  std::vector<Tensor> conductance;  // per layer (N, C): the conductance map's mean over H,W
  std::vector<Tensor> maps;         // per layer (N, C, H, W), when options.maps
  Tensor logits;                    // (N, K) at the input itself (alpha = 1)
  std::vector<int> predictions, targets;
  // (N, L): sum of the layer's conductance map - (F(x) - F(baseline)), F the target logit
  // (near 0 for a layer that cuts the graph, given enough steps).
  Tensor delta;
};

class ConductanceEngine {
 public:
  // The model and the backend must outlive the engine. Throws naming an unknown layer, a
  // baseline of the wrong shape or a bound too small for one row.
  ConductanceEngine(const Model& model, Backend& backend, ConductanceOptions options);
  ~ConductanceEngine();

  // images: `count` preprocessed samples (host, count x C x H x W). targets: per image the
  // class to attribute, or -1 (or an empty vector) for the predicted class.
  ConductanceResult run(const float* images, int64_t count, const std::vector<int>& targets = {});

  int64_t chunk_rows() const { return chunk_rows_; }
  const ConductanceOptions& options() const { return options_; }

 private:
  Plan& plan_for(int64_t rows);

  const Model& model_;
  Backend& backend_;
  ConductanceOptions options_;
  IntegrationPath path_;
  PlanOptions plan_options_;
  int64_t sample_ = 0;  // floats per input sample
  std::vector<int64_t> channels_, spatial_;  // per layer
  int64_t chunk_rows_ = 0;
  // The baseline: its device copy, and a batch-1 plan holding its activations and logits
  // (A(x_0) of the paper rule is the same for every image: computed once).
  std::unique_ptr<DeviceBuffer> baseline_;
  std::unique_ptr<Plan> baseline_plan_;
  Tensor baseline_logits_;
  std::map<int64_t, std::unique_ptr<Plan>> plans_;  // by batch rows: the chunk and a tail
};

}  // namespace veto
