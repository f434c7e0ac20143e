// The backend interface: every op's kernels on one kind of device. All pointers are device
// pointers of this backend (host memory for the CPU backends). Shapes include the batch.
// A backend that lacks an op does not compile: every kernel here is pure virtual.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/ops.h"

namespace veto {

// Memory owned by a backend (freed when the object dies).
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  float* data() const { return data_; }
  size_t size() const { return size_; }

 protected:
  float* data_ = nullptr;
  size_t size_ = 0;
};

// The arithmetic of convolutions and dense layers (where nearly all the FLOPs are).
// Activations are stored in FP32 in every mode, and every other op computes in FP32.
//   fp32: FP32 FMA math; agrees with the reference backend to FP32 rounding.
//   tf32: inputs rounded to TF32 (10-bit mantissa) on tensor cores, FP32 accumulation.
//   bf16: inputs and weights rounded to bfloat16 (8-bit mantissa) on tensor cores, FP32
//         accumulation; a convolution's sum is then rounded to bfloat16 too (cuDNN writes
//         bf16 outputs from bf16 inputs) before its FP32 bias, residual and ReLU. A shape
//         cuDNN has no bf16 algorithm for keeps FP32 data with TF32 math. Dense layers
//         return FP32 sums.
// tf32 and bf16 exist on the CUDA backend only (tensor cores, Ampere and later).
enum class Precision { FP32, TF32, BF16 };
const char* precision_name(Precision precision);
// "fp32", "tf32" or "bf16"; throws naming the value otherwise.
Precision parse_precision(const std::string& name);

// Device work a backend recorded once and can queue again as a whole (a CUDA Graph): a
// replay skips the per-call launch cost of the work's many small kernels.
class RecordedWork {
 public:
  virtual ~RecordedWork() = default;
  // Queues the recorded work again. Returns false, queuing nothing, when the recording no
  // longer holds (scratch memory it used has moved): record the work again.
  virtual bool replay() = 0;
};

// One interval of layer conductance for one sample (Backend::conductance_accumulate).
struct ConductanceTerm {
  const float* grad;
  const float* upper;
  const float* lower;
  float* sums;
  float* map;  // may be null
};

// What a convolution step computes after the convolution itself:
// y = relu?(conv(x, w) + bias + residual?). Batch norm is folded into w and bias by the
// caller; the canonical weights stay untouched.
struct ConvFusion {
  bool relu = false;
  bool residual = false;  // add a tensor of the output's shape before the ReLU
};

// A convolution prepared for one input shape: backends pack weights and pick algorithms once.
class Conv2dKernel {
 public:
  virtual ~Conv2dKernel() = default;
  // Host pointers: OIHW weight and (out_channels) bias, bias may be null. Called once
  // after creation and again whenever the weights change (a mutant delta).
  virtual void set_weights(const float* weight, const float* bias) = 0;
  // Replaces whole output filters of the weights last set: `weight` holds each listed filter's
  // (in_channels / groups) x kh x kw values in OIHW order, one filter after another in the
  // order of `filters`; the bias and every other filter stay. A mutant's sparse delta and its
  // revert: only the changed filters travel to the device.
  virtual void set_filters(const std::vector<int64_t>& filters, const float* weight) = 0;
  // residual is null unless the kernel was made with ConvFusion::residual.
  virtual void forward(const float* x, float* y, const float* residual) = 0;
  // Data gradient of the convolution alone (no epilogue: the executor applies the ReLU mask
  // and routes the residual's gradient itself): dx = conv_transpose(dy, w) with the weights
  // of the last set_weights. dy has the output's shape, dx the input's; with `accumulate`
  // the result is added to dx instead of overwriting it.
  virtual void backward_data(const float* dy, float* dx, bool accumulate) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Worker threads for host-side parallelism (0 = one per CPU core).
  virtual void set_threads(int threads) = 0;

  // Memory and transfers.
  virtual std::unique_ptr<DeviceBuffer> allocate(size_t floats) = 0;
  virtual void upload(const float* host, float* device, size_t floats) = 0;
  virtual void download(const float* device, float* host, size_t floats) = 0;
  // Device to device; the ranges must not overlap.
  virtual void copy(const float* from, float* to, size_t floats) = 0;
  virtual void synchronize() = 0;
  // Host memory that upload_async can read while the caller goes on (page-locked on a GPU),
  // for the input batches of dataset runs. data() is a host pointer.
  virtual std::unique_ptr<DeviceBuffer> allocate_pinned(size_t floats) = 0;
  // Queues the copy and returns at once: `host` (from allocate_pinned) must stay unchanged
  // until the next download() or synchronize() returns. Host backends copy at once.
  virtual void upload_async(const float* host, float* device, size_t floats) = 0;

  // Records the device work that `work` queues, without running it, for replay. Null where
  // this backend cannot record it (or capture failed): the caller then runs `work` itself.
  // The work must queue the same calls on the same pointers every time (the memory's
  // contents may change between replays: new inputs, mutated weights), must not wait for
  // the device or allocate memory, and must not need more scratch memory than it used when
  // it last ran unrecorded. The host backends "record" by keeping `work` and running it again: there
  // is no launch cost to save, and the executor keeps one code path, tested on every backend.
  virtual std::unique_ptr<RecordedWork> record(const std::function<void()>& work) = 0;

  // Forward kernels.
  virtual std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input,
                                                    const ConvFusion& fusion) = 0;
  // Inference batch norm from its parameters (weight, bias, running mean and variance).
  virtual void batch_norm_forward(const BatchNormOp& op, const Shape& shape, const float* x, const float* weight,
                                  const float* bias, const float* mean, const float* var, float* y) = 0;
  virtual void relu_forward(int64_t count, const float* x, float* y) = 0;
  // y = a + b, then ReLU when relu is set.
  virtual void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) = 0;
  virtual void zero_pad_shortcut_forward(const ZeroPadShortcutOp& op, const Shape& input, const float* x,
                                         float* y) = 0;
  virtual void global_avg_pool_forward(const Shape& input, const float* x, float* y) = 0;
  virtual void avg_pool_forward(const AvgPoolOp& op, const Shape& input, const float* x, float* y) = 0;
  // x (batch, in_features), weight (out_features, in_features), bias may be null.
  virtual void dense_forward(const DenseOp& op, int64_t batch, const float* x, const float* weight,
                             const float* bias, float* y) = 0;
  virtual void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) = 0;
  virtual void max_pool_forward(const MaxPoolOp& op, const Shape& input, const float* x, float* y) = 0;
  // One input of a concatenation: x (N, C_part, H, W) into channels [channel_offset,
  // channel_offset + C_part) of y, which has `total_channels` channels.
  virtual void concat_forward(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* x,
                              float* y) = 0;
  // y[:, c] = x[:, c] * op.scale[c] + op.shift[c]; the constants live in the op (host).
  virtual void channel_affine_forward(const ChannelAffineOp& op, const Shape& shape, const float* x, float* y) = 0;
  // y = min(max(x, op.min), op.max); NaN stays NaN.
  virtual void clip_forward(const ClipOp& op, int64_t count, const float* x, float* y) = 0;
  // A strided window of the input's (C,H,W) (SliceOp); y has infer_shape's shape.
  virtual void slice_forward(const SliceOp& op, const Shape& input, const float* x, float* y) = 0;
  // The input framed by op.value on (C,H,W) (PadOp).
  virtual void pad_forward(const PadOp& op, const Shape& input, const float* x, float* y) = 0;

  // Data-gradient kernels (never weight gradients). Each gets the gradient dy at the op's
  // output and writes the gradient at one input, dx; `accumulate` adds into dx instead of
  // overwriting it (a tensor read by several nodes gets the sum of their gradients). Shapes
  // are the forward input's. Where the gradient depends on the forward values the kernel
  // also gets them (ReLU, clip and softmax their output y, max pool its input x). dx never
  // overlaps dy or the forward values.
  virtual void batch_norm_backward_data(const BatchNormOp& op, const Shape& shape, const float* dy,
                                        const float* weight, const float* var, float* dx, bool accumulate) = 0;
  // dx = dy where y > 0, else 0 (the subgradient at 0 is 0, as in PyTorch).
  virtual void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate) = 0;
  // The gradient at either input of an add is dy itself.
  virtual void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate) = 0;
  virtual void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& op, const Shape& input, const float* dy,
                                               float* dx, bool accumulate) = 0;
  virtual void global_avg_pool_backward_data(const Shape& input, const float* dy, float* dx, bool accumulate) = 0;
  virtual void avg_pool_backward_data(const AvgPoolOp& op, const Shape& input, const float* dy, float* dx,
                                      bool accumulate) = 0;
  // dx (batch, in_features) = dy (batch, out_features) * weight (out_features, in_features).
  virtual void dense_backward_data(const DenseOp& op, int64_t batch, const float* dy, const float* weight,
                                   float* dx, bool accumulate) = 0;
  // dx = y * (dy - sum(dy * y)) per row.
  virtual void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx,
                                     bool accumulate) = 0;
  // The whole gradient of a window goes to its first maximum in row-major scan order (the
  // cell the forward pass picks; PyTorch's rule).
  virtual void max_pool_backward_data(const MaxPoolOp& op, const Shape& input, const float* x, const float* dy,
                                      float* dx, bool accumulate) = 0;
  // The gradient of one input of a concatenation: channels [channel_offset, channel_offset +
  // part[1]) of dy, which has `total_channels` channels.
  virtual void concat_backward_data(const Shape& part, int64_t channel_offset, int64_t total_channels,
                                    const float* dy, float* dx, bool accumulate) = 0;
  virtual void channel_affine_backward_data(const ChannelAffineOp& op, const Shape& shape, const float* dy,
                                            float* dx, bool accumulate) = 0;
  // dx = dy where op.min < y < op.max, else 0 (y the forward output; PyTorch's hardtanh rule).
  virtual void clip_backward_data(const ClipOp& op, int64_t count, const float* y, const float* dy, float* dx,
                                  bool accumulate) = 0;
  // The sliced cells get their dy, every other cell 0.
  virtual void slice_backward_data(const SliceOp& op, const Shape& input, const float* dy, float* dx,
                                   bool accumulate) = 0;
  // The interior crop of dy (the padding is constant: no gradient).
  virtual void pad_backward_data(const PadOp& op, const Shape& input, const float* dy, float* dx,
                                 bool accumulate) = 0;

  // Attribution kernels.
  // y = baseline + alpha * (x - baseline) over `count` values (an integrated-gradients step,
  // formed on the device so no host copy of every step exists).
  virtual void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y) = 0;
  // Intervals of layer conductance of one layer, each over one sample of its (channels,
  // spatial) activation: v = grad * (upper - lower) elementwise; sums[c] += sum over the
  // channel's spatial values of v, and map (when not null) += v. The terms are applied in
  // order: those sharing sums (which must then share map) add up in that order, the numbers of
  // one call per term; terms with different sums must not overlap. One call covers every
  // interval of a pass over the steps (on CUDA one kernel launch per layer and pass).
  virtual void conductance_accumulate(int64_t channels, int64_t spatial,
                                      const std::vector<ConductanceTerm>& terms) = 0;
};

// "cpu" (fast kernels), "reference" (plain loops: the test oracle), "cuda", or "auto"
// (CUDA when a device is present, else CPU). Throws naming the problem otherwise, and when
// the backend lacks the precision (tf32 and bf16 need CUDA).
std::unique_ptr<Backend> make_backend(const std::string& kind, Precision precision = Precision::FP32);
std::unique_ptr<Backend> make_best_backend(Precision precision = Precision::FP32);

}  // namespace veto
