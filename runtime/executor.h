// An executor plan: one (model, backend, batch size) compiled into a list of kernel calls
// over one activation arena. Building a plan infers shapes, fuses what it may (batch norm
// folded into the preceding convolution, ReLU and residual adds into conv/add epilogues),
// assigns arena offsets by liveness, and prepares the backend's convolution kernels.
#pragma once

#include <functional>
#include <map>
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
  // Nodes whose data gradients backward_data() computes (kept as well). Empty: the plan is
  // forward-only and allocates no gradient arena.
  std::set<std::string> gradients;
  // Every materialized value keeps its own memory (no reuse by liveness) and forward()
  // keeps a copy of them all, so that forward_changed() can re-run only the part of the
  // graph a weight change reaches, on top of the last full forward (mutant evaluation).
  // Not combined with gradients.
  bool incremental = false;
  // From their second run on, queue the forward and backward kernel calls (and those of each
  // distinct forward_changed) through the backend's recording (a CUDA Graph: one launch
  // instead of hundreds). Off: every call is issued every time (to measure what it saves).
  bool record = true;
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
  // As forward(host_input), but returns once the work is queued: `pinned_input` (from
  // Backend::allocate_pinned) must stay unchanged until output()/logits() or the backend's
  // synchronize() returns, so the caller can prepare the next batch meanwhile.
  void queue_forward(const float* pinned_input);
  // Runs the graph on the samples already written into input() (device memory).
  void forward();
  float* input();
  // After forward(): the data gradients, from `seed` = dF/dlogits (host, batch x classes)
  // down to the earliest of options.gradients. Weight gradients are never computed; the
  // activations backward needs were kept alive by the plan, so forward() must come first.
  void backward_data(const float* host_seed);
  // The output of a node after forward() (the graph output: the logits), copied to host.
  Tensor output(const std::string& node) const;
  Tensor logits() const;
  // Device pointers (valid for the plan's life) to a kept node's output and to the gradient
  // at a node of options.gradients; shape(node) is the node's shape at this batch.
  const float* activation(const std::string& node) const;
  const float* gradient(const std::string& node) const;
  const Shape& shape(const std::string& node) const;
  // Re-reads the model's parameters (after an in-place change of the parameter arena).
  void refresh_parameters();
  // Re-reads whole output filters of one convolution node (graph node index) after a weight
  // delta changed them in the parameter arena: only those filters are folded and sent to the
  // kernel, which patches them in place (the other filters and the bias stay).
  void refresh_filters(int conv_node, const std::vector<int64_t>& filters);
  // Incremental plans only, after forward(): recomputes the nodes downstream of
  // `changed_nodes` (graph node indices, e.g. the convolutions a mutant changed; refresh
  // their weights first) and reads every other value from the last full forward, restoring
  // those an earlier forward_changed() overwrote. The logits and every kept output are
  // then those of the changed model; the next forward() starts from scratch.
  void forward_changed(const std::vector<int>& changed_nodes);
  // Bytes of the activation and gradient arenas (and an incremental plan's copy of the
  // activations), for memory reports and chunk sizing.
  size_t arena_bytes() const {
    return (arena_floats_ * (options_.incremental ? 2 : 1) + gradient_floats_) * sizeof(float);
  }

 private:
  struct ConvStep;
  void refresh(ConvStep& step);
  // A fixed sequence of this plan's kernel calls, recorded for replay once it has run.
  struct Recording {
    std::unique_ptr<RecordedWork> work;
    bool warm = false;    // ran once unrecorded: algorithms chosen, scratch memory sized
    bool failed = false;  // the backend could not record it: always run it directly
  };
  void run_recorded(Recording& recording, const std::function<void()>& work);

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
  // Per fused step: the node it materializes, the values it reads, its calls in steps_.
  struct StepRange {
    int tail = -1;
    std::vector<int> reads;
    size_t begin = 0, end = 0;
  };
  std::vector<StepRange> step_ranges_;
  // Incremental plans: the activations of the last full forward, and which nodes now hold
  // a value of forward_changed() instead.
  std::unique_ptr<DeviceBuffer> snapshot_;
  bool snapshot_valid_ = false;
  std::vector<bool> modified_;
  // Backward: gradient arena offsets per node (-1: none), and the kernel calls in order.
  std::vector<int64_t> gradient_offset_;
  std::vector<bool> gradient_target_;
  size_t gradient_floats_ = 0;
  std::unique_ptr<DeviceBuffer> gradient_arena_;
  std::vector<std::function<void()>> backward_steps_;
  Recording forward_recording_, backward_recording_;
  // Per set of changed nodes given to forward_changed (mutants of one layer share one).
  std::map<std::vector<int>, Recording> changed_recordings_;
};

}  // namespace veto
