#include "runtime/ops.h"

#include "runtime/error.h"

namespace veto {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

void expect_rank(const Shape& s, int rank, const std::string& node, const char* op) {
  VETO_CHECK(s.rank() == rank, "node '", node, "' (", op, "): expected a rank-", rank, " input, got ", s.str());
}

int64_t window_out(int64_t in, int64_t pad_before, int64_t pad_after, int64_t kernel, int64_t stride,
                   const std::string& node) {
  const int64_t span = in + pad_before + pad_after - kernel;
  VETO_CHECK(stride > 0 && span >= 0, "node '", node, "': window ", kernel, " stride ", stride,
             " does not fit an input of size ", in);
  return span / stride + 1;
}

}  // namespace

std::string op_name(const OpParams& op) {
  return std::visit(Overloaded{[](const InputOp&) { return "input"; }, [](const Conv2dOp&) { return "conv2d"; },
                               [](const BatchNormOp&) { return "batch_norm"; }, [](const ReluOp&) { return "relu"; },
                               [](const AddOp&) { return "add"; },
                               [](const ZeroPadShortcutOp&) { return "zero_pad_shortcut"; },
                               [](const GlobalAvgPoolOp&) { return "global_avg_pool"; },
                               [](const AvgPoolOp&) { return "avg_pool"; }, [](const DenseOp&) { return "dense"; },
                               [](const SoftmaxOp&) { return "softmax"; },
                               [](const MaxPoolOp&) { return "max_pool"; }, [](const ConcatOp&) { return "concat"; },
                               [](const ChannelAffineOp&) { return "channel_affine"; },
                               [](const ClipOp&) { return "clip"; }, [](const SliceOp&) { return "slice"; },
                               [](const PadOp&) { return "pad"; }},
                    op);
}

int op_arity(const OpParams& op) {
  if (std::holds_alternative<InputOp>(op)) return 0;
  if (std::holds_alternative<AddOp>(op)) return 2;
  if (std::holds_alternative<ConcatOp>(op)) return -1;
  return 1;
}

Shape infer_shape(const OpParams& op, const std::vector<Shape>& in, const std::string& node) {
  const int arity = op_arity(op);
  VETO_CHECK(arity < 0 ? !in.empty() : static_cast<int>(in.size()) == arity, "node '", node, "' (", op_name(op),
             ") takes ", arity < 0 ? std::string("one or more") : std::to_string(arity), " inputs, got ", in.size());
  return std::visit(
      Overloaded{
          [&](const InputOp& p) {
            std::vector<int64_t> d{1};
            d.insert(d.end(), p.sample_shape.dims.begin(), p.sample_shape.dims.end());
            return Shape(d);
          },
          [&](const Conv2dOp& p) {
            expect_rank(in[0], 4, node, "conv2d");
            VETO_CHECK(in[0][1] == p.in_channels, "node '", node, "' (conv2d): expects ", p.in_channels,
                       " input channels, got input ", in[0].str());
            VETO_CHECK(p.groups >= 1 && p.in_channels % p.groups == 0 && p.out_channels % p.groups == 0, "node '",
                       node, "' (conv2d): ", p.groups, " groups do not divide ", p.in_channels, " input and ",
                       p.out_channels, " output channels");
            VETO_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1 && p.dilation_h <= 1024 && p.dilation_w <= 1024,
                       "node '", node, "' (conv2d): dilations must be in [1, 1024]");
            return Shape{in[0][0], p.out_channels,
                         window_out(in[0][2], p.pad_top, p.pad_bottom, (p.kernel_h - 1) * p.dilation_h + 1,
                                    p.stride_h, node),
                         window_out(in[0][3], p.pad_left, p.pad_right, (p.kernel_w - 1) * p.dilation_w + 1,
                                    p.stride_w, node)};
          },
          [&](const BatchNormOp& p) {
            expect_rank(in[0], 4, node, "batch_norm");
            VETO_CHECK(in[0][1] == p.channels, "node '", node, "' (batch_norm): expects ", p.channels,
                       " channels, got input ", in[0].str());
            return in[0];
          },
          [&](const ReluOp&) { return in[0]; },
          [&](const AddOp&) {
            VETO_CHECK(in[0] == in[1], "node '", node, "' (add): input shapes differ: ", in[0].str(), " vs ",
                       in[1].str());
            return in[0];
          },
          [&](const ZeroPadShortcutOp& p) {
            expect_rank(in[0], 4, node, "zero_pad_shortcut");
            VETO_CHECK(p.stride > 0, "node '", node, "': stride must be positive");
            return Shape{in[0][0], in[0][1] + p.pad_channels_before + p.pad_channels_after,
                         (in[0][2] + p.stride - 1) / p.stride, (in[0][3] + p.stride - 1) / p.stride};
          },
          [&](const GlobalAvgPoolOp&) {
            expect_rank(in[0], 4, node, "global_avg_pool");
            return Shape{in[0][0], in[0][1], 1, 1};
          },
          [&](const AvgPoolOp& p) {
            expect_rank(in[0], 4, node, "avg_pool");
            return Shape{in[0][0], in[0][1],
                         window_out(in[0][2], p.pad_top, p.pad_bottom, p.kernel_h, p.stride_h, node),
                         window_out(in[0][3], p.pad_left, p.pad_right, p.kernel_w, p.stride_w, node)};
          },
          [&](const DenseOp& p) {
            VETO_CHECK(in[0].rank() >= 2 && in[0].numel() / in[0][0] == p.in_features, "node '", node,
                       "' (dense): expects ", p.in_features, " features per sample, got input ", in[0].str());
            return Shape{in[0][0], p.out_features};
          },
          [&](const SoftmaxOp&) {
            expect_rank(in[0], 2, node, "softmax");
            return in[0];
          },
          [&](const MaxPoolOp& p) {
            expect_rank(in[0], 4, node, "max_pool");
            VETO_CHECK(p.pad_top < p.kernel_h && p.pad_bottom < p.kernel_h && p.pad_left < p.kernel_w &&
                           p.pad_right < p.kernel_w,
                       "node '", node, "' (max_pool): padding must be smaller than the window");
            return Shape{in[0][0], in[0][1],
                         window_out(in[0][2], p.pad_top, p.pad_bottom, p.kernel_h, p.stride_h, node),
                         window_out(in[0][3], p.pad_left, p.pad_right, p.kernel_w, p.stride_w, node)};
          },
          [&](const ConcatOp&) {
            Shape out = in[0];
            expect_rank(out, 4, node, "concat");
            for (size_t i = 1; i < in.size(); ++i) {
              const bool fits = in[i].rank() == 4 && in[i][0] == out[0] && in[i][2] == out[2] && in[i][3] == out[3];
              VETO_CHECK(fits, "node '", node, "' (concat): input ", i, " has shape ", in[i].str(),
                         ", which does not match ", in[0].str(), " outside the channels");
              out[1] += in[i][1];
            }
            return out;
          },
          [&](const ChannelAffineOp& p) {
            expect_rank(in[0], 4, node, "channel_affine");
            VETO_CHECK(static_cast<int64_t>(p.scale.size()) == in[0][1] && p.shift.size() == p.scale.size(),
                       "node '", node, "' (channel_affine): ", p.scale.size(), " constants for input ", in[0].str());
            return in[0];
          },
          [&](const ClipOp& p) {
            VETO_CHECK(p.min <= p.max, "node '", node, "' (clip): min ", p.min, " exceeds max ", p.max);
            return in[0];
          },
          [&](const SliceOp& p) {
            expect_rank(in[0], 4, node, "slice");
            Shape out = in[0];
            for (int a = 0; a < 3; ++a) {
              const int64_t n = in[0][a + 1];
              const bool fits = p.step[a] > 0 && p.size[a] > 0 && p.start[a] >= 0 && p.start[a] < n &&
                                (n - 1 - p.start[a]) / p.step[a] >= p.size[a] - 1;
              VETO_CHECK(fits, "node '", node, "' (slice): axis ", a + 1, " start ", p.start[a], " step ", p.step[a],
                         " size ", p.size[a], " does not fit input ", in[0].str());
              out[a + 1] = p.size[a];
            }
            return out;
          },
          [&](const PadOp& p) {
            expect_rank(in[0], 4, node, "pad");
            // Real models pad by a few cells; the bound keeps shapes (and memory) sane.
            constexpr int64_t kMaxPad = 4096;
            Shape out = in[0];
            for (int a = 0; a < 3; ++a) {
              VETO_CHECK(p.before[a] >= 0 && p.after[a] >= 0 && p.before[a] <= kMaxPad &&
                             p.after[a] <= kMaxPad,
                         "node '", node, "' (pad): pads on axis ", a + 1, " must be in [0, ", kMaxPad, "]");
              out[a + 1] += p.before[a] + p.after[a];
            }
            return out;
          }},
      op);
}

std::vector<ParamSpec> param_specs(const OpParams& op, const std::string& node) {
  std::vector<ParamSpec> specs;
  if (const auto* c = std::get_if<Conv2dOp>(&op)) {
    specs.push_back({node + ".weight", Shape{c->out_channels, c->in_channels / c->groups, c->kernel_h, c->kernel_w}});
    if (c->has_bias) specs.push_back({node + ".bias", Shape{c->out_channels}});
  } else if (const auto* b = std::get_if<BatchNormOp>(&op)) {
    for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"})
      specs.push_back({node + s, Shape{b->channels}});
  } else if (const auto* d = std::get_if<DenseOp>(&op)) {
    specs.push_back({node + ".weight", Shape{d->out_features, d->in_features}});
    if (d->has_bias) specs.push_back({node + ".bias", Shape{d->out_features}});
  }
  return specs;
}

int64_t op_macs(const OpParams& op, const Shape& out) {
  const int64_t per_sample = out.numel() / out[0];
  if (const auto* c = std::get_if<Conv2dOp>(&op))
    return per_sample * (c->in_channels / c->groups) * c->kernel_h * c->kernel_w;
  if (const auto* d = std::get_if<DenseOp>(&op)) return per_sample * d->in_features;
  return 0;
}

int64_t check_conv_filters(const Conv2dOp& op, const std::vector<int64_t>& filters, const float* weight,
                           bool weights_set, const std::string& what) {
  VETO_CHECK(weights_set, what, ": set_filters before set_weights");
  VETO_CHECK(weight || filters.empty(), what, ": set_filters without weights");
  std::vector<bool> seen(static_cast<size_t>(op.out_channels), false);
  for (int64_t f : filters) {
    VETO_CHECK(f >= 0 && f < op.out_channels, what, ": filter ", f, " out of range (", op.out_channels, " filters)");
    VETO_CHECK(!seen[static_cast<size_t>(f)], what, ": filter ", f, " listed twice");
    seen[static_cast<size_t>(f)] = true;
  }
  return (op.in_channels / op.groups) * op.kernel_h * op.kernel_w;
}

}  // namespace veto
