// The reference backend: every op through the plain loops of kernels/reference. Slow on
// purpose; it is the oracle the fast backends are tested against, model by model.
#include <vector>

#include "kernels/reference/add.h"
#include "kernels/reference/avg_pool.h"
#include "kernels/reference/batch_norm.h"
#include "kernels/reference/channel_affine.h"
#include "kernels/reference/clip.h"
#include "kernels/reference/concat.h"
#include "kernels/reference/conductance.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/dense.h"
#include "kernels/reference/global_avg_pool.h"
#include "kernels/reference/max_pool.h"
#include "kernels/reference/pad.h"
#include "kernels/reference/relu.h"
#include "kernels/reference/slice.h"
#include "kernels/reference/softmax.h"
#include "kernels/reference/zero_pad_shortcut.h"
#include "runtime/backends.h"
#include "runtime/host_backend.h"

namespace veto {
namespace {

// The reference kernels write their result; `accumulate` is applied here, from a scratch
// copy, so the kernels stay the plain definitions the gradient checks test.
template <class Kernel>
void into(int64_t count, float* dx, bool accumulate, Kernel&& kernel) {
  if (!accumulate) return kernel(dx);
  std::vector<float> scratch(static_cast<size_t>(count));
  kernel(scratch.data());
  for (int64_t i = 0; i < count; ++i) dx[i] += scratch[static_cast<size_t>(i)];
}

class ReferenceConv2d : public Conv2dKernel {
 public:
  ReferenceConv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion)
      : op_(op), input_(input), output_(infer_shape(op, {input}, "conv2d")), fusion_(fusion) {}

  void set_weights(const float* weight, const float* bias) override {
    weight_.assign(weight, weight + op_.out_channels * (op_.in_channels / op_.groups) * op_.kernel_h * op_.kernel_w);
    bias_.assign(op_.out_channels, 0.0f);
    if (bias) bias_.assign(bias, bias + op_.out_channels);
  }

  void set_filters(const std::vector<int64_t>& filters, const float* weight) override {
    const int64_t size = check_conv_filters(op_, filters, weight, !weight_.empty(), "reference conv2d");
    for (size_t f = 0; f < filters.size(); ++f)
      std::copy(weight + static_cast<int64_t>(f) * size, weight + static_cast<int64_t>(f + 1) * size,
                weight_.begin() + filters[f] * size);
  }

  void forward(const float* x, float* y, const float* residual) override {
    reference::conv2d_forward(op_, input_[0], input_[2], input_[3], x, weight_.data(), bias_.data(), output_[2],
                              output_[3], y);
    const int64_t n = output_.numel();
    if (fusion_.residual) reference::add_forward(n, y, residual, y);
    if (fusion_.relu) reference::relu_forward(n, y, y);
  }

  void backward_data(const float* dy, float* dx, bool accumulate) override {
    into(input_.numel(), dx, accumulate, [&](float* out) {
      reference::conv2d_backward_data(op_, input_[0], input_[2], input_[3], dy, weight_.data(), output_[2],
                                      output_[3], out);
    });
  }

 private:
  Conv2dOp op_;
  Shape input_, output_;
  ConvFusion fusion_;
  std::vector<float> weight_, bias_;
};

class ReferenceBackend : public HostBackend {
 public:
  std::string name() const override { return "reference"; }

  std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input,
                                            const ConvFusion& fusion) override {
    return std::make_unique<ReferenceConv2d>(op, input, fusion);
  }
  void batch_norm_forward(const BatchNormOp& op, const Shape& s, const float* x, const float* weight,
                          const float* bias, const float* mean, const float* var, float* y) override {
    reference::batch_norm_forward(s[0], s[1], s[2] * s[3], x, weight, bias, mean, var, op.eps, y);
  }
  void relu_forward(int64_t count, const float* x, float* y) override { reference::relu_forward(count, x, y); }
  void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) override {
    reference::add_forward(count, a, b, y);
    if (relu) reference::relu_forward(count, y, y);
  }
  void zero_pad_shortcut_forward(const ZeroPadShortcutOp& op, const Shape& s, const float* x, float* y) override {
    reference::zero_pad_shortcut_forward(op, s[0], s[1], s[2], s[3], x, y);
  }
  void global_avg_pool_forward(const Shape& s, const float* x, float* y) override {
    reference::global_avg_pool_forward(s[0], s[1], s[2] * s[3], x, y);
  }
  void avg_pool_forward(const AvgPoolOp& op, const Shape& s, const float* x, float* y) override {
    const Shape out = infer_shape(op, {s}, "avg_pool");
    reference::avg_pool_forward(op, s[0], s[1], s[2], s[3], x, out[2], out[3], y);
  }
  void dense_forward(const DenseOp& op, int64_t batch, const float* x, const float* w, const float* bias,
                     float* y) override {
    reference::dense_forward(batch, op.in_features, op.out_features, x, w, bias, y);
  }
  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) override {
    reference::softmax_forward(rows, cols, x, y);
  }
  void max_pool_forward(const MaxPoolOp& op, const Shape& s, const float* x, float* y) override {
    const Shape out = infer_shape(op, {s}, "max_pool");
    reference::max_pool_forward(op, s[0], s[1], s[2], s[3], x, out[2], out[3], y);
  }
  void concat_forward(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* x,
                      float* y) override {
    reference::concat_forward(part[0], part[1], part[2] * part[3], channel_offset, total_channels, x, y);
  }
  void channel_affine_forward(const ChannelAffineOp& op, const Shape& s, const float* x, float* y) override {
    reference::channel_affine_forward(s[0], s[1], s[2] * s[3], x, op.scale.data(), op.shift.data(), y);
  }
  void clip_forward(const ClipOp& op, int64_t count, const float* x, float* y) override {
    reference::clip_forward(op, count, x, y);
  }
  void slice_forward(const SliceOp& op, const Shape& s, const float* x, float* y) override {
    reference::slice_forward(op, s[0], s[1], s[2], s[3], x, y);
  }
  void pad_forward(const PadOp& op, const Shape& s, const float* x, float* y) override {
    reference::pad_forward(op, s[0], s[1], s[2], s[3], x, y);
  }

  void batch_norm_backward_data(const BatchNormOp& op, const Shape& s, const float* dy, const float* weight,
                                const float* var, float* dx, bool accumulate) override {
    into(s.numel(), dx, accumulate, [&](float* out) {
      reference::batch_norm_backward_data(s[0], s[1], s[2] * s[3], dy, weight, var, op.eps, out);
    });
  }
  void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate) override {
    into(count, dx, accumulate, [&](float* out) { reference::relu_backward_data(count, y, dy, out); });
  }
  void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate) override {
    into(count, dx, accumulate, [&](float* out) { reference::add_backward_data(count, dy, out); });
  }
  void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& op, const Shape& s, const float* dy, float* dx,
                                       bool accumulate) override {
    into(s.numel(), dx, accumulate, [&](float* out) {
      reference::zero_pad_shortcut_backward_data(op, s[0], s[1], s[2], s[3], dy, out);
    });
  }
  void global_avg_pool_backward_data(const Shape& s, const float* dy, float* dx, bool accumulate) override {
    into(s.numel(), dx, accumulate,
         [&](float* out) { reference::global_avg_pool_backward_data(s[0], s[1], s[2] * s[3], dy, out); });
  }
  void avg_pool_backward_data(const AvgPoolOp& op, const Shape& s, const float* dy, float* dx,
                              bool accumulate) override {
    const Shape o = infer_shape(op, {s}, "avg_pool");
    into(s.numel(), dx, accumulate, [&](float* out) {
      reference::avg_pool_backward_data(op, s[0], s[1], s[2], s[3], dy, o[2], o[3], out);
    });
  }
  void dense_backward_data(const DenseOp& op, int64_t batch, const float* dy, const float* w, float* dx,
                           bool accumulate) override {
    into(batch * op.in_features, dx, accumulate, [&](float* out) {
      reference::dense_backward_data(batch, op.in_features, op.out_features, dy, w, out);
    });
  }
  void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx,
                             bool accumulate) override {
    into(rows * cols, dx, accumulate, [&](float* out) { reference::softmax_backward_data(rows, cols, y, dy, out); });
  }
  void max_pool_backward_data(const MaxPoolOp& op, const Shape& s, const float* x, const float* dy, float* dx,
                              bool accumulate) override {
    const Shape o = infer_shape(op, {s}, "max_pool");
    into(s.numel(), dx, accumulate, [&](float* out) {
      reference::max_pool_backward_data(op, s[0], s[1], s[2], s[3], x, dy, o[2], o[3], out);
    });
  }
  void concat_backward_data(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* dy,
                            float* dx, bool accumulate) override {
    into(part.numel(), dx, accumulate, [&](float* out) {
      reference::concat_backward_data(part[0], part[1], part[2] * part[3], channel_offset, total_channels, dy, out);
    });
  }
  void channel_affine_backward_data(const ChannelAffineOp& op, const Shape& s, const float* dy, float* dx,
                                    bool accumulate) override {
    into(s.numel(), dx, accumulate, [&](float* out) {
      reference::channel_affine_backward_data(s[0], s[1], s[2] * s[3], dy, op.scale.data(), out);
    });
  }
  void clip_backward_data(const ClipOp& op, int64_t count, const float* y, const float* dy, float* dx,
                          bool accumulate) override {
    into(count, dx, accumulate, [&](float* out) { reference::clip_backward_data(op, count, y, dy, out); });
  }
  void slice_backward_data(const SliceOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    into(s.numel(), dx, accumulate,
         [&](float* out) { reference::slice_backward_data(op, s[0], s[1], s[2], s[3], dy, out); });
  }
  void pad_backward_data(const PadOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    into(s.numel(), dx, accumulate,
         [&](float* out) { reference::pad_backward_data(op, s[0], s[1], s[2], s[3], dy, out); });
  }

  void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y) override {
    reference::interpolate(count, baseline, x, alpha, y);
  }
  void conductance_accumulate(int64_t channels, int64_t spatial, const std::vector<ConductanceTerm>& terms) override {
    for (const ConductanceTerm& t : terms)
      reference::conductance_accumulate(channels, spatial, t.grad, t.upper, t.lower, t.sums, t.map);
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace veto
