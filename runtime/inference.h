// Running a model over a whole dataset, batch by batch.
#pragma once

#include "runtime/backend.h"
#include "runtime/dataset.h"
#include "runtime/model.h"

namespace veto {

struct InferenceResult {
  Tensor logits;             // (count, classes)
  std::vector<int> predictions;  // argmax of each row (the lowest index on ties)
  double seconds = 0;        // wall time of loading + forward, excluding plan building
};

// Logits for every sample of `data`, in batches of at most `batch` (one plan per distinct
// batch size, so the last partial batch costs one more plan, not a padded forward).
InferenceResult run_inference(const Model& model, Backend& backend, const Dataset& data, int64_t batch);

// Index of the largest value of each row.
std::vector<int> argmax_rows(const Tensor& scores);

}  // namespace veto
