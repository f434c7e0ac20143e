// The Label Change Rate: LCR(x) = #{mutants m : argmax F_m(x) != argmax F(x)} / #mutants
// (Wang et al., ICSE 2019), and building the accepted mutant set it needs. Images are
// batched; per batch the original model runs once, then every mutant is applied to the
// live weights as a sparse delta, only the part of the graph downstream of its changed
// filters is recomputed (the rest comes from the original forward), and the delta is
// reverted bit-exactly.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "runtime/backend.h"
#include "runtime/dataset.h"
#include "runtime/distributed.h"
#include "runtime/executor.h"
#include "runtime/mutation.h"

namespace veto {

// Runs the original model and mutants of it on one batch of images at a time.
class MutantRunner {
 public:
  // The model and the backend must outlive the runner; the model's parameters are changed
  // during predict() and restored before it returns. `naive`: the baseline the fast path is
  // measured against: every mutant copies the whole model, changes the copy, re-reads all
  // of its weights and runs a full forward.
  MutantRunner(Model& model, Backend& backend, int64_t batch, bool naive = false);
  ~MutantRunner();

  // Runs the original model on `count` (1..batch) preprocessed images (host, N x C x H x W)
  // and returns its predictions. The mutants of predict() run on these images.
  const std::vector<int>& load(const float* images, int64_t count);
  // The predictions of the mutant `delta` on the loaded images.
  std::vector<int> predict(const WeightDelta& delta);
  // The original model's logits on the loaded images (count x classes).
  const Tensor& logits() const { return logits_; }
  int64_t batch() const { return batch_; }
  int64_t classes() const;
  bool naive() const { return naive_; }

 private:
  Plan& plan_for(int64_t count);

  Model& model_;
  Backend& backend_;
  int64_t batch_;
  bool naive_;
  std::unique_ptr<Model> copy_;  // naive: the mutated copy
  std::map<int64_t, std::unique_ptr<Plan>> plans_;
  Plan* current_ = nullptr;
  std::vector<float> images_;  // naive: the loaded images (its full forwards re-read them)
  Tensor logits_;
  std::vector<int> predictions_;
};

// Makes the plan's kernels read the filters `delta` changes from the model's parameters: call
// it with the delta applied (ScopedDelta), and again once it is reverted.
void refresh_changed_filters(Plan& plan, const WeightDelta& delta);

// The largest batch (at most `requested`) whose fast-path plan fits `max_memory` bytes: per
// image every activation and its copy (an upper bound: values fused away count too). Throws
// when one image does not fit.
int64_t mutant_batch(const Model& model, int64_t requested, size_t max_memory);

// Sequential probability ratio test on the label changes (Wang et al.): threshold zeta,
// p1 = zeta + sigma, p0 = zeta - sigma, sigma = 0.1 zeta; after n mutants with c changes
// LLR = c ln(p1/p0) + (n - c) ln((1 - p1)/(1 - p0)); "suspicious" once LLR >= ln((1 -
// beta)/alpha), "stable" once LLR <= ln(beta/(1 - alpha)), checked after every mutant.
struct Sprt {
  explicit Sprt(double threshold, double alpha = 0.05, double beta = 0.05);
  enum Decision { Undecided = -1, Stable = 0, Suspicious = 1 };
  Decision decide(int64_t changes, int64_t mutants) const;
  double threshold, p0, p1, upper, lower;
};

struct LcrOptions {
  bool sprt = false;  // stop each image's mutants at the SPRT's decision
  double sprt_threshold = 0.1;
  // The part of the work one call does (a rank's shard under MPI): images and mutants in
  // these ranges (end < 0: to the last). The result keeps every image's and mutant's place;
  // outside the ranges changes and used stay 0 and predictions -1. Image ranges should
  // start on a multiple of the batch (shard_range) so batches match a whole run's.
  Range images{0, -1}, mutants{0, -1};
};

struct LcrResult {
  Tensor logits;                 // (N, K) of the original model
  std::vector<int> predictions;  // original predictions
  // (N x M) row-major: each mutant's prediction on each image, -1 where SPRT skipped it.
  std::vector<int> mutant_predictions;
  std::vector<int64_t> changes;  // per image: mutants whose prediction differs
  std::vector<int64_t> used;     // per image: mutants evaluated (M without SPRT)
  std::vector<int> decisions;    // per image: Sprt::Decision (with options.sprt)
  int64_t mutant_forwards = 0;   // (mutant, image) evaluations actually run
  double seconds = 0;            // loading + original and mutant forwards
  double lcr(int64_t i) const {
    return used[static_cast<size_t>(i)] ? static_cast<double>(changes[static_cast<size_t>(i)]) /
                                              static_cast<double>(used[static_cast<size_t>(i)])
                                        : 0.0;
  }
};

// LCR of every image of `data` over `mutants`, in batches of the runner's size. With SPRT a
// batch stops at the first mutant after which every image in it is decided.
LcrResult compute_lcr(MutantRunner& runner, const Dataset& data, const std::vector<WeightDelta>& mutants,
                      const LcrOptions& options = {});

// compute_lcr over the ranks of `comm`: they form groups of `mutant_shards` ranks; each
// group takes a shard of the images (shard_range), each rank of a group a shard of the
// mutants; a group's change counts are summed (MPI_Allreduce) and the groups' rows
// gathered to rank 0, whose result equals a one-process run's (other ranks' results hold
// only their own shard). `mutant_shards` must divide the rank count; SPRT needs 1.
LcrResult compute_lcr_sharded(MutantRunner& runner, const Dataset& data, const std::vector<WeightDelta>& mutants,
                              LcrOptions options, const Communicator& comm, int mutant_shards = 1);

struct MutantBuildOptions {
  MutationOperator op = MutationOperator::NAI;
  double gamma = 0.01;
  uint64_t seed = 0;
  int64_t count = 100;
  double accept_ratio = 0.9;
  int64_t max_draws = 0;           // 0: 10 x count
  std::vector<std::string> scope;  // conv layer names or prefixes; empty: every convolution
  // Called after every round of draws with (accepted, drawn) so far (progress reports).
  std::function<void(int64_t, int64_t)> progress;
};

// Draws mutants (MutantGenerator) and keeps, in draw order, the first `count` whose accuracy
// on the labelled `acceptance` data is > accept_ratio x the original model's; the result
// is the same for any batch size, thread count or number of ranks of `comm` (each runs a
// shard of every round's draws). Throws after max_draws draws without enough accepted
// mutants. The runner must run on `model`.
MutantSet build_mutant_set(Model& model, MutantRunner& runner, const Dataset& acceptance,
                           const MutantBuildOptions& options, const Communicator& comm = Communicator());

}  // namespace veto
