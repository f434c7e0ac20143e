// The CPU backend: oneDNN convolutions (kernels/cpu/conv2d) and OpenMP kernels for the rest.
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/kernels.h"
#include "runtime/backends.h"
#include "runtime/host_backend.h"

namespace veto {
namespace {

class CpuBackend : public HostBackend {
 public:
  std::string name() const override { return "cpu"; }

  std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input,
                                            const ConvFusion& fusion) override {
    return cpu::make_conv2d(op, input, fusion);
  }
  void batch_norm_forward(const BatchNormOp& op, const Shape& s, const float* x, const float* weight,
                          const float* bias, const float* mean, const float* var, float* y) override {
    cpu::batch_norm_forward(s[0], s[1], s[2] * s[3], x, weight, bias, mean, var, op.eps, y);
  }
  void relu_forward(int64_t count, const float* x, float* y) override { cpu::relu_forward(count, x, y); }
  void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) override {
    cpu::add_forward(count, a, b, y, relu);
  }
  void zero_pad_shortcut_forward(const ZeroPadShortcutOp& op, const Shape& s, const float* x, float* y) override {
    cpu::zero_pad_shortcut_forward(op, s[0], s[1], s[2], s[3], x, y);
  }
  void global_avg_pool_forward(const Shape& s, const float* x, float* y) override {
    cpu::global_avg_pool_forward(s[0], s[1], s[2] * s[3], x, y);
  }
  void avg_pool_forward(const AvgPoolOp& op, const Shape& s, const float* x, float* y) override {
    const Shape out = infer_shape(op, {s}, "avg_pool");
    cpu::avg_pool_forward(op, s[0], s[1], s[2], s[3], x, out[2], out[3], y);
  }
  void dense_forward(const DenseOp& op, int64_t batch, const float* x, const float* w, const float* bias,
                     float* y) override {
    cpu::dense_forward(batch, op.in_features, op.out_features, x, w, bias, y);
  }
  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) override {
    cpu::softmax_forward(rows, cols, x, y);
  }
  void max_pool_forward(const MaxPoolOp& op, const Shape& s, const float* x, float* y) override {
    const Shape out = infer_shape(op, {s}, "max_pool");
    cpu::max_pool_forward(op, s[0], s[1], s[2], s[3], x, out[2], out[3], y);
  }
  void concat_forward(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* x,
                      float* y) override {
    cpu::concat_forward(part[0], part[1], part[2] * part[3], channel_offset, total_channels, x, y);
  }
  void channel_affine_forward(const ChannelAffineOp& op, const Shape& s, const float* x, float* y) override {
    cpu::channel_affine_forward(s[0], s[1], s[2] * s[3], x, op.scale.data(), op.shift.data(), y);
  }
  void clip_forward(const ClipOp& op, int64_t count, const float* x, float* y) override {
    cpu::clip_forward(op, count, x, y);
  }
  void slice_forward(const SliceOp& op, const Shape& s, const float* x, float* y) override {
    cpu::slice_forward(op, s[0], s[1], s[2], s[3], x, y);
  }
  void pad_forward(const PadOp& op, const Shape& s, const float* x, float* y) override {
    cpu::pad_forward(op, s[0], s[1], s[2], s[3], x, y);
  }

  void batch_norm_backward_data(const BatchNormOp& op, const Shape& s, const float* dy, const float* weight,
                                const float* var, float* dx, bool accumulate) override {
    cpu::batch_norm_backward_data(s[0], s[1], s[2] * s[3], dy, weight, var, op.eps, dx, accumulate);
  }
  void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate) override {
    cpu::relu_backward_data(count, y, dy, dx, accumulate);
  }
  void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate) override {
    cpu::add_backward_data(count, dy, dx, accumulate);
  }
  void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& op, const Shape& s, const float* dy, float* dx,
                                       bool accumulate) override {
    cpu::zero_pad_shortcut_backward_data(op, s[0], s[1], s[2], s[3], dy, dx, accumulate);
  }
  void global_avg_pool_backward_data(const Shape& s, const float* dy, float* dx, bool accumulate) override {
    cpu::global_avg_pool_backward_data(s[0], s[1], s[2] * s[3], dy, dx, accumulate);
  }
  void avg_pool_backward_data(const AvgPoolOp& op, const Shape& s, const float* dy, float* dx,
                              bool accumulate) override {
    const Shape out = infer_shape(op, {s}, "avg_pool");
    cpu::avg_pool_backward_data(op, s[0], s[1], s[2], s[3], dy, out[2], out[3], dx, accumulate);
  }
  void dense_backward_data(const DenseOp& op, int64_t batch, const float* dy, const float* w, float* dx,
                           bool accumulate) override {
    cpu::dense_backward_data(batch, op.in_features, op.out_features, dy, w, dx, accumulate);
  }
  void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx,
                             bool accumulate) override {
    cpu::softmax_backward_data(rows, cols, y, dy, dx, accumulate);
  }
  void max_pool_backward_data(const MaxPoolOp& op, const Shape& s, const float* x, const float* dy, float* dx,
                              bool accumulate) override {
    const Shape out = infer_shape(op, {s}, "max_pool");
    cpu::max_pool_backward_data(op, s[0], s[1], s[2], s[3], x, dy, out[2], out[3], dx, accumulate);
  }
  void concat_backward_data(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* dy,
                            float* dx, bool accumulate) override {
    cpu::concat_backward_data(part[0], part[1], part[2] * part[3], channel_offset, total_channels, dy, dx,
                              accumulate);
  }
  void channel_affine_backward_data(const ChannelAffineOp& op, const Shape& s, const float* dy, float* dx,
                                    bool accumulate) override {
    cpu::channel_affine_backward_data(s[0], s[1], s[2] * s[3], dy, op.scale.data(), dx, accumulate);
  }
  void clip_backward_data(const ClipOp& op, int64_t count, const float* y, const float* dy, float* dx,
                          bool accumulate) override {
    cpu::clip_backward_data(op, count, y, dy, dx, accumulate);
  }
  void slice_backward_data(const SliceOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    cpu::slice_backward_data(op, s[0], s[1], s[2], s[3], dy, dx, accumulate);
  }
  void pad_backward_data(const PadOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    cpu::pad_backward_data(op, s[0], s[1], s[2], s[3], dy, dx, accumulate);
  }

  void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y) override {
    cpu::interpolate(count, baseline, x, alpha, y);
  }
  void conductance_accumulate(int64_t channels, int64_t spatial, const std::vector<ConductanceTerm>& terms) override {
    for (const ConductanceTerm& t : terms)
      cpu::conductance_accumulate(channels, spatial, t.grad, t.upper, t.lower, t.sums, t.map);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace veto
