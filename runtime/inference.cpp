#include "runtime/inference.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "runtime/error.h"
#include "runtime/executor.h"

namespace veto {

std::vector<int> argmax_rows(const Tensor& scores) {
  const int64_t rows = scores.shape()[0], cols = scores.shape()[1];
  std::vector<int> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = scores.data() + r * cols;
    out[static_cast<size_t>(r)] = static_cast<int>(std::max_element(row, row + cols) - row);
  }
  return out;
}

InferenceResult run_inference(const Model& model, Backend& backend, const Dataset& data, int64_t batch) {
  VETO_CHECK(batch > 0, "batch size must be positive, got ", batch);
  const int64_t count = data.size();
  const int64_t classes = model.graph.node(model.graph.output()).shape.numel();
  InferenceResult r;
  r.logits = Tensor(Shape{count, classes});
  std::map<int64_t, std::unique_ptr<Plan>> plans;
  // Two pinned input buffers: the host loads (decodes, resizes) batch i + 1 into one while the
  // device runs batch i from the other. A buffer is refilled only after the logits of the
  // batch it fed were read, which waits for its upload.
  const size_t staging_floats = static_cast<size_t>(std::min(batch, count) * data.sample_size());
  std::unique_ptr<DeviceBuffer> staging[2] = {backend.allocate_pinned(staging_floats),
                                              backend.allocate_pinned(staging_floats)};
  struct Queued {
    Plan* plan = nullptr;
    int64_t start = 0;
  };
  Queued queued;
  auto collect = [&] {
    if (!queued.plan) return;
    const Tensor out = queued.plan->logits();
    std::copy(out.values().begin(), out.values().end(), r.logits.data() + queued.start * classes);
    queued.plan = nullptr;
  };
  double building = 0;  // plan building is not inference time
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t start = 0, i = 0; start < count; start += batch, ++i) {
    const int64_t n = std::min(batch, count - start);
    auto& plan = plans[n];
    if (!plan) {
      const auto b0 = std::chrono::steady_clock::now();
      plan = std::make_unique<Plan>(model, backend, n);
      building += std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
    }
    float* host = staging[i % 2]->data();
    data.load_batch(start, n, host);
    collect();  // the previous batch: its plan may be this one, whose output the next forward overwrites
    plan->queue_forward(host);
    queued = {plan.get(), start};
  }
  collect();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - building;
  r.predictions = argmax_rows(r.logits);
  return r;
}

}  // namespace veto
