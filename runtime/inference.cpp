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
  std::vector<float> inputs(static_cast<size_t>(std::min(batch, count) * data.sample_size()));
  double seconds = 0;
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t n = std::min(batch, count - start);
    auto& plan = plans[n];
    if (!plan) plan = std::make_unique<Plan>(model, backend, n);
    const auto t0 = std::chrono::steady_clock::now();
    data.load_batch(start, n, inputs.data());
    plan->forward(inputs.data());
    const Tensor out = plan->logits();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::copy(out.values().begin(), out.values().end(), r.logits.data() + start * classes);
  }
  r.seconds = seconds;
  r.predictions = argmax_rows(r.logits);
  return r;
}

}  // namespace veto
