#include "runtime/executor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "runtime/error.h"

namespace veto {

struct Plan::ConvStep {
  int conv = -1;
  int batch_norm = -1;  // folded into the convolution when >= 0
  std::unique_ptr<Conv2dKernel> kernel;
};

namespace {

template <class T>
const T* as(const Node& n) {
  return std::get_if<T>(&n.op);
}

// A fused step: the chain of nodes it computes; only the tail's output is materialized.
struct StepGroup {
  std::vector<int> chain;
  int residual = -1;  // node added in a conv epilogue
  int tail() const { return chain.back(); }
};

// Conv weights with the following batch norm folded in, computed in double:
// w'[o] = w[o] * s[o], b'[o] = (b[o] - mean[o]) * s[o] + beta[o], s = gamma / sqrt(var + eps).
void fold_conv_batch_norm(const Model& m, int conv, int bn, std::vector<float>& w, std::vector<float>& b) {
  const Node& cn = m.graph.node(conv);
  const auto& op = std::get<Conv2dOp>(cn.op);
  const float* cw = m.params.get(cn.name + ".weight");
  const int64_t per_filter = op.in_channels * op.kernel_h * op.kernel_w;
  w.assign(cw, cw + op.out_channels * per_filter);
  b.assign(static_cast<size_t>(op.out_channels), 0.0f);
  if (op.has_bias) {
    const float* cb = m.params.get(cn.name + ".bias");
    b.assign(cb, cb + op.out_channels);
  }
  if (bn < 0) return;
  const Node& bnode = m.graph.node(bn);
  const float eps = std::get<BatchNormOp>(bnode.op).eps;
  const float* gamma = m.params.get(bnode.name + ".weight");
  const float* beta = m.params.get(bnode.name + ".bias");
  const float* mean = m.params.get(bnode.name + ".running_mean");
  const float* var = m.params.get(bnode.name + ".running_var");
  for (int64_t o = 0; o < op.out_channels; ++o) {
    const double s = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + eps);
    for (int64_t i = 0; i < per_filter; ++i) w[o * per_filter + i] = static_cast<float>(w[o * per_filter + i] * s);
    b[o] = static_cast<float>((static_cast<double>(b[o]) - mean[o]) * s + beta[o]);
  }
}

}  // namespace

Plan::Plan(const Model& model, Backend& backend, int64_t batch, PlanOptions options)
    : model_(model), backend_(backend), batch_(batch), options_(std::move(options)) {
  const Graph& g = model.graph;
  const int count = g.size();
  VETO_CHECK(batch > 0, "batch size must be positive, got ", batch);
  VETO_CHECK(count > 0 && as<InputOp>(g.node(0)), "model graph must start with its input node");

  // Shapes at this batch size.
  shapes_.resize(count);
  for (int i = 0; i < count; ++i) {
    const Node& n = g.node(i);
    std::vector<Shape> in;
    for (int j : n.inputs) in.push_back(shapes_[j]);
    shapes_[i] = i == 0 ? n.shape.with_batch(batch) : infer_shape(n.op, in, n.name);
  }

  kept_.assign(count, false);
  std::vector<bool>& kept = kept_;
  kept[0] = kept[g.output()] = true;
  for (const std::string& name : options_.keep) kept[g.find(name)] = true;
  const auto consumers = g.consumers();
  // The single consumer of node i when i may be fused into it, else -1.
  auto sole_consumer = [&](int i) {
    return (options_.fuse && !kept[i] && consumers[i].size() == 1) ? consumers[i][0] : -1;
  };

  // Group nodes into steps.
  std::vector<StepGroup> groups;
  std::vector<bool> absorbed(count, false);
  for (int i = 1; i < count; ++i) {
    if (absorbed[i]) continue;
    StepGroup group{{i}};
    const Node& n = g.node(i);
    if (as<Conv2dOp>(n)) {
      int c = sole_consumer(group.tail());
      if (c >= 0 && as<BatchNormOp>(g.node(c))) group.chain.push_back(c);
      c = sole_consumer(group.tail());
      if (c >= 0 && as<AddOp>(g.node(c))) {
        const auto& in = g.node(c).inputs;
        const int other = in[0] == group.tail() ? in[1] : in[0];
        // The residual must already be materialized when this convolution runs.
        if (other < i && !absorbed[other]) {
          group.chain.push_back(c);
          group.residual = other;
        }
      }
    }
    if (as<Conv2dOp>(n) || as<AddOp>(n)) {
      const int c = sole_consumer(group.tail());
      if (c >= 0 && as<ReluOp>(g.node(c))) group.chain.push_back(c);
    }
    for (size_t k = 1; k < group.chain.size(); ++k) absorbed[group.chain[k]] = true;
    groups.push_back(std::move(group));
  }

  // Liveness of materialized values, in step indices (the input is defined at step -1).
  const int never = std::numeric_limits<int>::max();
  std::vector<int> def(count, -2), last(count, -2);
  def[0] = last[0] = -1;
  for (int s = 0; s < static_cast<int>(groups.size()); ++s) {
    const StepGroup& grp = groups[s];
    def[grp.tail()] = last[grp.tail()] = s;
    std::vector<int> reads = g.node(grp.chain[0]).inputs;
    if (grp.residual >= 0) reads.push_back(grp.residual);
    for (int r : reads) last[r] = std::max(last[r], s);
  }
  for (int i = 0; i < count; ++i)
    if (kept[i] && def[i] != -2) last[i] = never;

  // First-fit offsets: a value may reuse space of values whose lifetimes do not overlap.
  offset_.assign(count, -1);
  std::vector<int> placed;
  for (int i = 0; i < count; ++i) {
    if (def[i] == -2) continue;
    const int64_t size = shapes_[i].numel();
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int j : placed)
      if (!(last[j] < def[i] || last[i] < def[j])) busy.push_back({offset_[j], offset_[j] + shapes_[j].numel()});
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [b, e] : busy) {
      if (at + size <= b) break;
      at = std::max(at, e);
    }
    offset_[i] = at;
    arena_floats_ = std::max(arena_floats_, static_cast<size_t>(at + size));
    placed.push_back(i);
  }
  arena_ = backend.allocate(arena_floats_);
  // Device copies of the parameters that steps read directly (unfused batch norms, dense
  // layers); convolutions keep their own packed, folded weights.
  std::map<std::string, int64_t> param_offset;
  int64_t param_floats = 0;
  for (const StepGroup& grp : groups) {
    const Node& n = g.node(grp.chain[0]);
    if (!as<BatchNormOp>(n) && !as<DenseOp>(n)) continue;
    for (const ParamSpec& spec : param_specs(n.op, n.name)) {
      const ParamArena::View& v = model.params.view(spec.name);
      param_offset[spec.name] = param_floats;
      direct_params_.push_back({v.offset, param_floats, v.shape.numel()});
      param_floats += v.shape.numel();
    }
  }
  params_ = backend.allocate(static_cast<size_t>(param_floats));

  // Compile each group into one kernel call.
  float* base = arena_->data();
  auto value = [&, base](int node) {
    VETO_CHECK(offset_[node] >= 0, "internal: node '", g.node(node).name, "' has no buffer");
    return base + offset_[node];
  };
  auto param = [this, &param_offset](const std::string& name) { return params_->data() + param_offset.at(name); };
  for (const StepGroup& grp : groups) {
    const Node& n = g.node(grp.chain[0]);
    const Shape& in_shape = n.inputs.empty() ? Shape{} : shapes_[n.inputs[0]];
    float* y = value(grp.tail());
    const float* x = n.inputs.empty() ? nullptr : value(n.inputs[0]);
    if (const auto* conv = as<Conv2dOp>(n)) {
      auto step = std::make_unique<ConvStep>();
      step->conv = grp.chain[0];
      ConvFusion fusion;
      for (size_t k = 1; k < grp.chain.size(); ++k) {
        const Node& f = g.node(grp.chain[k]);
        if (as<BatchNormOp>(f)) step->batch_norm = grp.chain[k];
        if (as<ReluOp>(f)) fusion.relu = true;
      }
      fusion.residual = grp.residual >= 0;
      step->kernel = backend.make_conv2d(*conv, in_shape, fusion);
      const float* residual = grp.residual >= 0 ? value(grp.residual) : nullptr;
      Conv2dKernel* kernel = step->kernel.get();
      steps_.push_back([kernel, x, y, residual] { kernel->forward(x, y, residual); });
      convs_.push_back(std::move(step));
    } else if (const auto* bn = as<BatchNormOp>(n)) {
      const float *w = param(n.name + ".weight"), *b = param(n.name + ".bias");
      const float *mean = param(n.name + ".running_mean"), *var = param(n.name + ".running_var");
      steps_.push_back([this, op = *bn, in_shape, x, w, b, mean, var, y] {
        backend_.batch_norm_forward(op, in_shape, x, w, b, mean, var, y);
      });
    } else if (as<ReluOp>(n)) {
      steps_.push_back([this, count = in_shape.numel(), x, y] { backend_.relu_forward(count, x, y); });
    } else if (as<AddOp>(n)) {
      const float* b = value(n.inputs[1]);
      const bool relu = grp.chain.size() > 1;
      steps_.push_back([this, count = in_shape.numel(), x, b, y, relu] { backend_.add_forward(count, x, b, y, relu); });
    } else if (const auto* zp = as<ZeroPadShortcutOp>(n)) {
      steps_.push_back([this, op = *zp, in_shape, x, y] { backend_.zero_pad_shortcut_forward(op, in_shape, x, y); });
    } else if (as<GlobalAvgPoolOp>(n)) {
      steps_.push_back([this, in_shape, x, y] { backend_.global_avg_pool_forward(in_shape, x, y); });
    } else if (const auto* ap = as<AvgPoolOp>(n)) {
      steps_.push_back([this, op = *ap, in_shape, x, y] { backend_.avg_pool_forward(op, in_shape, x, y); });
    } else if (const auto* d = as<DenseOp>(n)) {
      const float* w = param(n.name + ".weight");
      const float* b = d->has_bias ? param(n.name + ".bias") : nullptr;
      steps_.push_back([this, op = *d, x, w, b, y] { backend_.dense_forward(op, batch_, x, w, b, y); });
    } else if (const auto* mp = as<MaxPoolOp>(n)) {
      steps_.push_back([this, op = *mp, in_shape, x, y] { backend_.max_pool_forward(op, in_shape, x, y); });
    } else if (as<ConcatOp>(n)) {
      const int64_t total = shapes_[grp.tail()][1];
      int64_t offset = 0;
      for (int input : n.inputs) {
        const Shape part = shapes_[input];
        steps_.push_back([this, part, offset, total, x = value(input), y] {
          backend_.concat_forward(part, offset, total, x, y);
        });
        offset += part[1];
      }
    } else if (const auto* ca = as<ChannelAffineOp>(n)) {
      steps_.push_back([this, op = *ca, in_shape, x, y] { backend_.channel_affine_forward(op, in_shape, x, y); });
    } else if (as<SoftmaxOp>(n)) {
      steps_.push_back([this, in_shape, x, y] { backend_.softmax_forward(in_shape[0], in_shape[1], x, y); });
    } else {
      fail("node '", n.name, "': op ", op_name(n.op), " cannot be executed");
    }
  }
  refresh_parameters();
}

Plan::~Plan() = default;

void Plan::refresh_parameters() {
  for (const DirectParam& p : direct_params_)
    backend_.upload(model_.params.data() + p.model_offset, params_->data() + p.device_offset,
                    static_cast<size_t>(p.count));
  std::vector<float> w, b;
  for (auto& step : convs_) {
    const bool has_bias = std::get<Conv2dOp>(model_.graph.node(step->conv).op).has_bias;
    fold_conv_batch_norm(model_, step->conv, step->batch_norm, w, b);
    step->kernel->set_weights(w.data(), (has_bias || step->batch_norm >= 0) ? b.data() : nullptr);
  }
}

void Plan::forward(const float* host_input) {
  backend_.upload(host_input, arena_->data() + offset_[0], static_cast<size_t>(shapes_[0].numel()));
  for (auto& step : steps_) step();
}

Tensor Plan::output(const std::string& name) const {
  const int node = model_.graph.find(name);
  VETO_CHECK(kept_[node], "layer '", name, "' was not kept by this plan (list it in the layers to keep)");
  Tensor t(shapes_[node]);
  backend_.download(arena_->data() + offset_[node], t.data(), static_cast<size_t>(t.numel()));
  return t;
}

Tensor Plan::logits() const { return output(model_.graph.node(model_.graph.output()).name); }

}  // namespace veto
