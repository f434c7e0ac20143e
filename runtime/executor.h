// An executor plan: one (model, backend, batch size) compiled into a list of kernel calls
// over one activation arena. Building a plan infers shapes, fuses what it may (batch norm
// folded into the preceding convolution, ReLU and residual adds into conv/add epilogues),
// assigns arena offsets by liveness, and prepares the backend's convolution kernels.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/model.h"

namespace veto {

struct PlanOptions {
  // Fold BN into conv and fuse ReLU/residual epilogues. Off = one kernel call per node, as
  // the graph is written (what the reference backend runs to be the oracle).
  bool fuse = true;
  // Nodes whose outputs must be materialized and readable after forward() (layer selection).
  std::set<std::string> keep;
};

class Plan {
 public:
  // The model and the backend must outlive the plan (it reads the model's parameters again
  // in refresh_parameters()).
  Plan(const Model& model, Backend& backend, int64_t batch, PlanOptions options = {});
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  int64_t batch() const { return batch_; }
  // Runs the graph on `batch` preprocessed samples (host memory, batch x C x H x W).
  void forward(const float* host_input);
  // The output of a node after forward() (the graph output: the logits), copied to host.
  Tensor output(const std::string& node) const;
  Tensor logits() const;
  // Re-reads the model's parameters (after an in-place change of the parameter arena).
  void refresh_parameters();
  // Bytes of the activation arena (for memory reports).
  size_t arena_bytes() const { return arena_floats_ * sizeof(float); }

 private:
  struct ConvStep;
  int value_index(int node) const;

  const Model& model_;
  Backend& backend_;
  int64_t batch_;
  PlanOptions options_;
  std::vector<Shape> shapes_;                  // per node, with batch
  std::vector<int64_t> offset_;                // per node: arena offset, -1 if fused away
  std::vector<bool> kept_;                     // per node: readable after forward()
  size_t arena_floats_ = 0;
  std::unique_ptr<DeviceBuffer> arena_;
  struct DirectParam {
    int64_t model_offset, device_offset, count;
  };
  std::vector<DirectParam> direct_params_;     // parameters steps read from params_
  std::unique_ptr<DeviceBuffer> params_;
  std::vector<std::unique_ptr<ConvStep>> convs_;
  std::vector<std::function<void()>> steps_;
};

}  // namespace veto
