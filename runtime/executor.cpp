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
// BnScale gives s[o]; fold_conv_filters folds chosen filters (each one's values after another,
// in the order of `filters`), fold_conv_batch_norm all of them and the bias, so a mutant's
// refolded filters are bit for bit those of a whole refold.
struct BnScale {
  const float *gamma, *var;
  float eps;
  double operator()(int64_t o) const {
    return static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + eps);
  }
};
BnScale bn_scale(const Model& m, int bn) {
  const Node& n = m.graph.node(bn);
  return {m.params.get(n.name + ".weight"), m.params.get(n.name + ".running_var"), std::get<BatchNormOp>(n.op).eps};
}

void fold_conv_filters(const Model& m, int conv, int bn, const std::vector<int64_t>& filters, std::vector<float>& w) {
  const Node& cn = m.graph.node(conv);
  const auto& op = std::get<Conv2dOp>(cn.op);
  const float* cw = m.params.get(cn.name + ".weight");
  const int64_t per_filter = (op.in_channels / op.groups) * op.kernel_h * op.kernel_w;  // a filter sees one group
  w.resize(filters.size() * static_cast<size_t>(per_filter));
  const BnScale scale = bn >= 0 ? bn_scale(m, bn) : BnScale{};
  for (size_t f = 0; f < filters.size(); ++f) {
    const int64_t o = filters[f];
    VETO_CHECK(o >= 0 && o < op.out_channels, "node '", cn.name, "': no filter ", o);
    const float* in = cw + o * per_filter;
    float* out = w.data() + f * static_cast<size_t>(per_filter);
    if (bn < 0) {
      std::copy(in, in + per_filter, out);
      continue;
    }
    const double s = scale(o);
    for (int64_t i = 0; i < per_filter; ++i) out[i] = static_cast<float>(in[i] * s);
  }
}

void fold_conv_batch_norm(const Model& m, int conv, int bn, std::vector<float>& w, std::vector<float>& b) {
  const Node& cn = m.graph.node(conv);
  const auto& op = std::get<Conv2dOp>(cn.op);
  std::vector<int64_t> all(static_cast<size_t>(op.out_channels));
  for (int64_t o = 0; o < op.out_channels; ++o) all[static_cast<size_t>(o)] = o;
  fold_conv_filters(m, conv, bn, all, w);
  b.assign(static_cast<size_t>(op.out_channels), 0.0f);
  if (op.has_bias) {
    const float* cb = m.params.get(cn.name + ".bias");
    b.assign(cb, cb + op.out_channels);
  }
  if (bn < 0) return;
  const Node& bnode = m.graph.node(bn);
  const float* beta = m.params.get(bnode.name + ".bias");
  const float* mean = m.params.get(bnode.name + ".running_mean");
  const BnScale scale = bn_scale(m, bn);
  for (int64_t o = 0; o < op.out_channels; ++o)
    b[o] = static_cast<float>((static_cast<double>(b[o]) - mean[o]) * scale(o) + beta[o]);
}

// First-fit placement of values in one arena: value i (size[i] floats, live from step
// def[i] to step last[i] inclusive; def[i] == -2: no buffer) may reuse the space of values
// whose lifetimes do not overlap its own. Returns each value's offset (-1 for none).
std::vector<int64_t> place_first_fit(const std::vector<int64_t>& size, const std::vector<int>& def,
                                     const std::vector<int>& last, size_t& total) {
  std::vector<int64_t> offset(size.size(), -1);
  std::vector<size_t> placed;
  total = 0;
  for (size_t i = 0; i < size.size(); ++i) {
    if (def[i] == -2) continue;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed)
      if (!(last[j] < def[i] || last[i] < def[j])) busy.push_back({offset[j], offset[j] + size[j]});
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [b, e] : busy) {
      if (at + size[i] <= b) break;
      at = std::max(at, e);
    }
    offset[i] = at;
    total = std::max(total, static_cast<size_t>(at + size[i]));
    placed.push_back(i);
  }
  return offset;
}

bool ends_in_fused_relu(const Graph& g, const StepGroup& grp) {
  return grp.chain.size() > 1 && as<ReluOp>(g.node(grp.tail()));
}

}  // namespace

Plan::Plan(const Model& model, Backend& backend, int64_t batch, PlanOptions options)
    : model_(model), backend_(backend), batch_(batch), options_(std::move(options)) {
  const Graph& g = model.graph;
  const int count = g.size();
  VETO_CHECK(batch > 0, "batch size must be positive, got ", batch);
  VETO_CHECK(count > 0 && as<InputOp>(g.node(0)), "model graph must start with its input node");
  VETO_CHECK(!options_.incremental || options_.gradients.empty(), "an incremental plan computes no gradients");

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
  for (const std::string& name : options_.gradients) kept[g.find(name)] = true;
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
    if ((kept[i] || options_.incremental) && def[i] != -2) last[i] = never;

  // Backward: the gradient flows into node i only if i is a gradient target or lies
  // downstream of one (in_scope); a step's backward runs only if it sends gradient into
  // scope. The forward values those steps read (ReLU and clip masks, max-pool inputs,
  // softmax outputs) must survive until backward, so they are never overwritten.
  std::vector<bool> in_scope(count, false);
  for (const std::string& name : options_.gradients) in_scope[g.find(name)] = true;
  for (int i = 0; i < count; ++i)
    for (int in : g.node(i).inputs) in_scope[i] = in_scope[i] || in_scope[in];
  auto destinations = [&](const StepGroup& grp) {
    std::vector<int> d;
    for (int in : g.node(grp.chain[0]).inputs)
      if (in_scope[in]) d.push_back(in);
    if (grp.residual >= 0 && in_scope[grp.residual]) d.push_back(grp.residual);
    return d;
  };
  for (const StepGroup& grp : groups) {
    if (destinations(grp).empty()) continue;
    const Node& head = g.node(grp.chain[0]);
    if (ends_in_fused_relu(g, grp) || as<ReluOp>(head) || as<ClipOp>(head) || as<SoftmaxOp>(head))
      last[grp.tail()] = never;
    if (as<MaxPoolOp>(head)) last[head.inputs[0]] = never;
  }

  std::vector<int64_t> sizes(count);
  for (int i = 0; i < count; ++i) sizes[i] = shapes_[i].numel();
  offset_ = place_first_fit(sizes, def, last, arena_floats_);
  arena_ = backend.allocate(arena_floats_);
  if (options_.incremental) {
    snapshot_ = backend.allocate(arena_floats_);
    modified_.assign(count, false);
  }
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
  std::vector<Conv2dKernel*> group_conv(groups.size(), nullptr);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const StepGroup& grp = groups[gi];
    const Node& n = g.node(grp.chain[0]);
    const Shape& in_shape = n.inputs.empty() ? Shape{} : shapes_[n.inputs[0]];
    float* y = value(grp.tail());
    const float* x = n.inputs.empty() ? nullptr : value(n.inputs[0]);
    StepRange range;
    range.tail = grp.tail();
    range.reads = n.inputs;
    if (grp.residual >= 0) range.reads.push_back(grp.residual);
    range.begin = steps_.size();
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
      group_conv[gi] = kernel;
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
    } else if (const auto* cl = as<ClipOp>(n)) {
      steps_.push_back([this, op = *cl, count = in_shape.numel(), x, y] { backend_.clip_forward(op, count, x, y); });
    } else if (const auto* sl = as<SliceOp>(n)) {
      steps_.push_back([this, op = *sl, in_shape, x, y] { backend_.slice_forward(op, in_shape, x, y); });
    } else if (const auto* pd = as<PadOp>(n)) {
      steps_.push_back([this, op = *pd, in_shape, x, y] { backend_.pad_forward(op, in_shape, x, y); });
    } else {
      fail("node '", n.name, "': op ", op_name(n.op), " cannot be executed");
    }
    range.end = steps_.size();
    step_ranges_.push_back(std::move(range));
  }

  // Backward: the groups in reverse, each turning the gradient at its tail into gradients
  // at its inputs. The first write into a node's gradient overwrites, later ones add (a
  // node read by several steps). Gradient buffers are placed by liveness like activations,
  // in backward step indices; the seed at the logits is defined before step 0.
  if (!options_.gradients.empty()) {
    const int out = g.output();
    std::vector<int> gdef(count, -2), glast(count, -2);
    std::vector<bool> written(count, false);
    gdef[out] = glast[out] = -1;
    written[out] = true;
    int b = 0;
    auto read = [&](int v) { glast[v] = std::max(glast[v], b); };
    auto write = [&](int v) {  // returns whether the write must accumulate
      if (gdef[v] == -2) gdef[v] = b;
      glast[v] = std::max(glast[v], b);
      const bool acc = written[v];
      written[v] = true;
      return acc;
    };
    auto grad = [this](int v) { return gradient_arena_->data() + gradient_offset_[v]; };
    auto act = [this](int v) { return arena_->data() + offset_[v]; };
    for (int gi = static_cast<int>(groups.size()) - 1; gi >= 0; --gi) {
      const StepGroup& grp = groups[gi];
      if (destinations(grp).empty()) continue;
      const Node& n = g.node(grp.chain[0]);
      const int tail = grp.tail();
      read(tail);
      int dy = tail;  // the node whose gradient feeds the head op
      if (ends_in_fused_relu(g, grp)) {
        const int pre = grp.chain[grp.chain.size() - 2];
        write(pre);
        read(pre);
        backward_steps_.push_back([this, act, grad, tail, pre, count = shapes_[tail].numel()] {
          backend_.relu_backward_data(count, act(tail), grad(tail), grad(pre), false);
        });
        dy = pre;
      }
      const int x = n.inputs.empty() ? -1 : n.inputs[0];
      const Shape in_shape = x < 0 ? Shape{} : shapes_[x];
      const bool to_x = x >= 0 && in_scope[x];
      if (as<Conv2dOp>(n)) {
        if (grp.residual >= 0 && in_scope[grp.residual]) {
          const bool acc = write(grp.residual);
          backward_steps_.push_back([this, grad, dy, r = grp.residual, acc, count = shapes_[dy].numel()] {
            backend_.add_backward_data(count, grad(dy), grad(r), acc);
          });
        }
        if (to_x) {
          const bool acc = write(x);
          backward_steps_.push_back(
              [grad, dy, x, acc, k = group_conv[gi]] { k->backward_data(grad(dy), grad(x), acc); });
        }
      } else if (as<AddOp>(n) || as<ConcatOp>(n)) {
        int64_t channel_offset = 0;
        for (int in : n.inputs) {
          const Shape part = shapes_[in];
          if (in_scope[in]) {
            const bool acc = write(in);
            if (as<AddOp>(n))
              backward_steps_.push_back([this, grad, dy, in, acc, count = part.numel()] {
                backend_.add_backward_data(count, grad(dy), grad(in), acc);
              });
            else
              backward_steps_.push_back([this, grad, dy, in, acc, part, channel_offset, total = shapes_[tail][1]] {
                backend_.concat_backward_data(part, channel_offset, total, grad(dy), grad(in), acc);
              });
          }
          channel_offset += part[1];
        }
      } else if (to_x) {
        const bool acc = write(x);
        std::function<void()> call;
        if (const auto* bn = as<BatchNormOp>(n)) {
          const float *w = param(n.name + ".weight"), *var = param(n.name + ".running_var");
          call = [this, grad, dy, x, acc, op = *bn, in_shape, w, var] {
            backend_.batch_norm_backward_data(op, in_shape, grad(dy), w, var, grad(x), acc);
          };
        } else if (as<ReluOp>(n)) {
          call = [this, act, grad, dy, x, acc, count = in_shape.numel()] {
            backend_.relu_backward_data(count, act(dy), grad(dy), grad(x), acc);
          };
        } else if (const auto* zp = as<ZeroPadShortcutOp>(n)) {
          call = [this, grad, dy, x, acc, op = *zp, in_shape] {
            backend_.zero_pad_shortcut_backward_data(op, in_shape, grad(dy), grad(x), acc);
          };
        } else if (as<GlobalAvgPoolOp>(n)) {
          call = [this, grad, dy, x, acc, in_shape] {
            backend_.global_avg_pool_backward_data(in_shape, grad(dy), grad(x), acc);
          };
        } else if (const auto* ap = as<AvgPoolOp>(n)) {
          call = [this, grad, dy, x, acc, op = *ap, in_shape] {
            backend_.avg_pool_backward_data(op, in_shape, grad(dy), grad(x), acc);
          };
        } else if (const auto* d = as<DenseOp>(n)) {
          const float* w = param(n.name + ".weight");
          call = [this, grad, dy, x, acc, op = *d, w] {
            backend_.dense_backward_data(op, batch_, grad(dy), w, grad(x), acc);
          };
        } else if (const auto* mp = as<MaxPoolOp>(n)) {
          call = [this, act, grad, dy, x, acc, op = *mp, in_shape] {
            backend_.max_pool_backward_data(op, in_shape, act(x), grad(dy), grad(x), acc);
          };
        } else if (const auto* ca = as<ChannelAffineOp>(n)) {
          call = [this, grad, dy, x, acc, op = *ca, in_shape] {
            backend_.channel_affine_backward_data(op, in_shape, grad(dy), grad(x), acc);
          };
        } else if (as<SoftmaxOp>(n)) {
          call = [this, act, grad, dy, x, acc, in_shape] {
            backend_.softmax_backward_data(in_shape[0], in_shape[1], act(dy), grad(dy), grad(x), acc);
          };
        } else if (const auto* cl = as<ClipOp>(n)) {
          call = [this, act, grad, dy, x, acc, op = *cl, count = in_shape.numel()] {
            backend_.clip_backward_data(op, count, act(dy), grad(dy), grad(x), acc);
          };
        } else if (const auto* sl = as<SliceOp>(n)) {
          call = [this, grad, dy, x, acc, op = *sl, in_shape] {
            backend_.slice_backward_data(op, in_shape, grad(dy), grad(x), acc);
          };
        } else if (const auto* pd = as<PadOp>(n)) {
          call = [this, grad, dy, x, acc, op = *pd, in_shape] {
            backend_.pad_backward_data(op, in_shape, grad(dy), grad(x), acc);
          };
        } else {
          fail("node '", n.name, "': op ", op_name(n.op), " has no backward");
        }
        backward_steps_.push_back(std::move(call));
      }
      ++b;
    }
    gradient_target_.assign(count, false);
    for (const std::string& name : options_.gradients) {
      const int t = g.find(name);
      gradient_target_[t] = true;
      VETO_CHECK(written[t], "layer '", name, "' does not lead to the model's output: it has no gradient");
      glast[t] = never;
    }
    gradient_offset_ = place_first_fit(sizes, gdef, glast, gradient_floats_);
    gradient_arena_ = backend.allocate(gradient_floats_);
  }
  refresh_parameters();
}

Plan::~Plan() = default;

void Plan::refresh(ConvStep& step) {
  std::vector<float> w, b;
  const bool has_bias = std::get<Conv2dOp>(model_.graph.node(step.conv).op).has_bias;
  fold_conv_batch_norm(model_, step.conv, step.batch_norm, w, b);
  step.kernel->set_weights(w.data(), (has_bias || step.batch_norm >= 0) ? b.data() : nullptr);
}

void Plan::refresh_parameters() {
  for (const DirectParam& p : direct_params_)
    backend_.upload(model_.params.data() + p.model_offset, params_->data() + p.device_offset,
                    static_cast<size_t>(p.count));
  for (auto& step : convs_) refresh(*step);
}

void Plan::refresh_filters(int conv_node, const std::vector<int64_t>& filters) {
  auto it = std::find_if(convs_.begin(), convs_.end(), [conv_node](const auto& s) { return s->conv == conv_node; });
  VETO_CHECK(it != convs_.end(), "node ", conv_node, " is not a convolution of this plan");
  std::vector<float> folded;
  fold_conv_filters(model_, (*it)->conv, (*it)->batch_norm, filters, folded);
  (*it)->kernel->set_filters(filters, folded.data());
}

void Plan::forward_changed(const std::vector<int>& changed_nodes) {
  VETO_CHECK(options_.incremental, "forward_changed needs a plan built with PlanOptions::incremental");
  VETO_CHECK(snapshot_valid_, "forward_changed needs a full forward() first");
  const Graph& g = model_.graph;
  std::vector<bool> dirty(static_cast<size_t>(g.size()), false);
  for (int n : changed_nodes) {
    VETO_CHECK(n >= 0 && n < g.size(), "forward_changed: no node ", n);
    dirty[static_cast<size_t>(n)] = true;
  }
  for (int i = 0; i < g.size(); ++i)
    for (int in : g.node(i).inputs) dirty[static_cast<size_t>(i)] = dirty[static_cast<size_t>(i)] || dirty[static_cast<size_t>(in)];
  float* arena = arena_->data();
  const float* snapshot = snapshot_->data();
  auto restore_if_modified = [&](int v) {
    if (dirty[static_cast<size_t>(v)] || !modified_[static_cast<size_t>(v)]) return;
    backend_.copy(snapshot + offset_[v], arena + offset_[v], static_cast<size_t>(shapes_[v].numel()));
    modified_[static_cast<size_t>(v)] = false;
  };
  // First the values the recomputed steps read that an earlier change left modified (which
  // ones depends on that change, so these copies stay out of the recording). Every value of
  // an incremental plan has its own memory: no recomputed step writes over a restored one.
  for (const StepRange& r : step_ranges_)
    if (dirty[static_cast<size_t>(r.tail)])
      for (int v : r.reads) restore_if_modified(v);
  // Then the recomputed steps: the same calls for the same changed nodes every time.
  std::vector<int> key = changed_nodes;
  std::sort(key.begin(), key.end());
  key.erase(std::unique(key.begin(), key.end()), key.end());
  // The dirty set by value: a recording's closure outlives this call.
  auto recompute = [this, dirty] {
    for (const StepRange& r : step_ranges_)
      if (dirty[static_cast<size_t>(r.tail)])
        for (size_t s = r.begin; s < r.end; ++s) steps_[s]();
  };
  // A bound on the graphs kept per plan (mutant builds draw ~1000 candidates); past it, new
  // change sets run unrecorded.
  constexpr size_t kMaxChangeRecordings = 256;
  auto found = changed_recordings_.find(key);
  // Like every recording, a change set is recorded on its second run: instantiating a graph
  // costs more than issuing its calls once, and most change sets of a mutant build run once.
  if (found == changed_recordings_.end() && changed_recordings_.size() < kMaxChangeRecordings)
    found = changed_recordings_.emplace(key, Recording{}).first;
  if (found != changed_recordings_.end())
    run_recorded(found->second, recompute);
  else
    recompute();
  for (const StepRange& r : step_ranges_)
    if (dirty[static_cast<size_t>(r.tail)]) modified_[static_cast<size_t>(r.tail)] = true;
  // Outputs a caller may read that this change did not reach but an earlier one did.
  for (int v = 0; v < g.size(); ++v)
    if (kept_[static_cast<size_t>(v)]) restore_if_modified(v);
}

void Plan::run_recorded(Recording& recording, const std::function<void()>& work) {
  if (options_.record && recording.warm && !recording.failed) {
    if (recording.work && recording.work->replay()) return;
    recording.work = backend_.record(work);  // the first time, or the last one went stale
    if (recording.work && recording.work->replay()) return;
    recording.work.reset();
    recording.failed = true;
  }
  work();
  recording.warm = true;
}

void Plan::forward(const float* host_input) {
  backend_.upload(host_input, input(), static_cast<size_t>(shapes_[0].numel()));
  forward();
}

void Plan::queue_forward(const float* pinned_input) {
  backend_.upload_async(pinned_input, input(), static_cast<size_t>(shapes_[0].numel()));
  forward();
}

float* Plan::input() { return arena_->data() + offset_[0]; }

void Plan::forward() {
  run_recorded(forward_recording_, [this] {
    for (auto& step : steps_) step();
  });
  if (options_.incremental) {
    backend_.copy(arena_->data(), snapshot_->data(), arena_floats_);
    modified_.assign(modified_.size(), false);
    snapshot_valid_ = true;
  }
}

void Plan::backward_data(const float* host_seed) {
  VETO_CHECK(gradient_arena_, "this plan computes no gradients (list the layers in PlanOptions::gradients)");
  const int out = model_.graph.output();
  backend_.upload(host_seed, gradient_arena_->data() + gradient_offset_[out], static_cast<size_t>(shapes_[out].numel()));
  run_recorded(backward_recording_, [this] {
    for (auto& step : backward_steps_) step();
  });
}

const float* Plan::activation(const std::string& name) const {
  const int node = model_.graph.find(name);
  VETO_CHECK(kept_[node], "layer '", name, "' was not kept by this plan (list it in the layers to keep)");
  return arena_->data() + offset_[node];
}

const float* Plan::gradient(const std::string& name) const {
  const int node = model_.graph.find(name);
  VETO_CHECK(!gradient_target_.empty() && gradient_target_[node], "layer '", name,
             "': this plan computes no gradient there");
  return gradient_arena_->data() + gradient_offset_[node];
}

const Shape& Plan::shape(const std::string& name) const { return shapes_[model_.graph.find(name)]; }

Tensor Plan::output(const std::string& name) const {
  Tensor t(shape(name));
  backend_.download(activation(name), t.data(), static_cast<size_t>(t.numel()));
  return t;
}

Tensor Plan::logits() const { return output(model_.graph.node(model_.graph.output()).name); }

}  // namespace veto
