// Model mutants for the Label Change Rate (Wang et al., ICSE 2019): a mutant is the model
// with a few whole convolution filters (output channels) changed. Mutants are sparse
// deltas on the canonical (unfolded) conv weights of the parameter arena: applied in place,
// evaluated, and reverted bit-exactly; never a copy of the model. Biases and batch norms
// are never touched (with BN folded for speed, the plan re-folds the changed filters, so
// NAI on a conv -> BN net gives BN(-z), as in the paper's code).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace veto {

struct SafetensorsFile;

// NAI: w[c] <- -w[c]. GF: w[c][i] <- N(mu_i, sigma_i), mu_i and sigma_i the mean and
// standard deviation of position i (cin, kh, kw) over all filters of the layer. WS: the
// filter's weights randomly permuted. NS: the drawn filters of a layer permuted among
// themselves (every one moves; a layer with a single drawn filter keeps it).
enum class MutationOperator { NAI, GF, WS, NS };
MutationOperator parse_mutation_operator(const std::string& name);  // nai|gf|ws|ns, throws listing them
std::string mutation_operator_name(MutationOperator op);            // "nai", ...

// One changed filter: the new values of filter `filter` of conv layer `layer`
// (in_channels / groups * kernel_h * kernel_w floats, OIHW order).
struct FilterEdit {
  std::string layer;
  int64_t filter = 0;
  std::vector<float> values;
};

struct Mutant {
  std::vector<FilterEdit> edits;  // sorted by (layer's graph order, filter), no duplicates
  int64_t draw = 0;               // which draw of the seed made it
  int64_t correct = -1;           // acceptance-set inputs it classifies correctly (-1: not evaluated)
};

// The convolution layers a mutation scope covers: every conv of the graph when `scope` is
// empty, else those whose name equals an entry or starts with "<entry>." (`layer3` takes
// every conv of layer3). Throws naming an entry that matches no convolution.
std::vector<std::string> conv_layers_in_scope(const Model& model, const std::vector<std::string>& scope);

// Draws mutants from the model's canonical weights, read at each draw: the model must outlive the
// generator, with no delta applied while it draws.
class MutantGenerator {
 public:
  // gamma in (0, 1]: the fraction of the scope's filters each mutant changes (rounded to
  // the nearest integer, at least 1). Throws on a bad gamma or an empty scope.
  MutantGenerator(const Model& model, MutationOperator op, double gamma, uint64_t seed,
                  std::vector<std::string> scope = {});
  // Draw number `draw` (0, 1, 2, ...): the same mutant for the same (model, op, gamma,
  // seed, scope, draw), whatever the order or thread draws are made in.
  Mutant draw(int64_t draw) const;

  int64_t filters_per_mutant() const { return per_mutant_; }
  int64_t filters_in_scope() const { return total_filters_; }
  const std::vector<std::string>& layers() const { return layers_; }

 private:
  struct Layer {
    std::string name;
    int64_t filters = 0, filter_size = 0, first = 0;  // first: global index of filter 0
    const float* weights = nullptr;
    std::vector<float> mean, stddev;  // per position, for GF
  };
  MutationOperator op_;
  uint64_t seed_;
  std::vector<std::string> layers_;
  std::vector<Layer> layer_info_;
  int64_t total_filters_ = 0, per_mutant_ = 0;
};

// A mutant resolved against one model: runs of the flat parameter arena and their new
// values, plus the graph nodes (convolutions) whose weights it changes.
struct WeightDelta {
  struct Run {
    int64_t offset = 0, length = 0;  // into ParamArena::data()
    int64_t value = 0;               // into values
  };
  std::vector<Run> runs;
  std::vector<float> values;
  std::vector<int> convs;  // graph node indices, ascending, unique
  std::vector<std::vector<int64_t>> filters;  // per entry of convs: its changed output filters
};
// Throws naming the problem: unknown layer, not a convolution, filter out of range, wrong
// value count, duplicate filter, non-finite value.
WeightDelta resolve_mutant(const Model& model, const Mutant& mutant);

// Applies a delta to the model's parameter arena on construction (saving what it
// overwrites) and restores those values, bit for bit, on destruction.
class ScopedDelta {
 public:
  ScopedDelta(ParamArena& params, const WeightDelta& delta);
  ~ScopedDelta();
  ScopedDelta(const ScopedDelta&) = delete;
  ScopedDelta& operator=(const ScopedDelta&) = delete;

 private:
  ParamArena& params_;
  const WeightDelta& delta_;
  std::vector<float> saved_;
};

// An accepted mutant set and how it was made.
struct MutantSet {
  std::string model_fingerprint;  // of the model the set was built for
  std::string model_source;       // that model's file (or bundled name), for messages
  std::string arch;
  MutationOperator op = MutationOperator::NAI;
  double gamma = 0;
  uint64_t seed = 0;
  std::vector<std::string> scope;  // as given (empty: every convolution)
  int64_t filters_per_mutant = 0;
  // Acceptance: a draw is kept when its accuracy on the acceptance set is > accept_ratio x
  // the original model's accuracy there.
  double accept_ratio = 0.9;
  std::string acceptance_data;  // where the acceptance set came from
  int64_t acceptance_count = 0;
  double original_accuracy = 0;
  int64_t draws = 0;     // draws made until `mutants` was complete
  int64_t rejected = 0;  // draws - accepted
  std::vector<Mutant> mutants;
};

// Which mutant set made a derived file (features, detectors), as "fnv1a64:<hex>": the
// model's fingerprint, the operator and every mutant's draw and edits.
std::string mutant_set_fingerprint(const MutantSet& set);

// The mutant file: safetensors, format "veto-mutants/1" (layout in the README).
void save_mutant_set(const MutantSet& set, const std::string& path);
// Reads and validates a mutant file; every problem is one veto::Error naming the file.
MutantSet load_mutant_set(const std::string& path);
// The same validation on an already parsed file (its source names it in messages).
MutantSet parse_mutant_set(const SafetensorsFile& file);
// Checks that `set` was built for `model` (the fingerprints agree; the message names both
// models) and resolves every mutant against it.
std::vector<WeightDelta> resolve_mutant_set(const Model& model, const MutantSet& set, const std::string& source);

}  // namespace veto
