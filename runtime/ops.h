// Every op kind is defined once here: its parameters, its parameter tensors and its output
// shape. Backends implement the kernels (backend.h); kernels/reference holds the spec.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "runtime/tensor.h"

namespace veto {

struct InputOp {
  Shape sample_shape;  // (C,H,W), without the batch dimension
};

// 2-D convolution, OIHW weights of shape (out_channels, in_channels / groups, kh, kw).
// Padding may be asymmetric: TensorFlow's "same" padding with stride 2 pads only after
// (bottom/right) when the total is odd. Dilation d spreads the kernel taps d cells apart
// (the window spans (k - 1) * d + 1 cells). With G groups, output channel o reads only the
// input channels of its group [g * in/G, (g + 1) * in/G), g = o / (out/G); depthwise is
// G = in_channels.
struct Conv2dOp {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool has_bias = false;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// Inference batch norm: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
struct BatchNormOp {
  int64_t channels = 0;
  float eps = 1e-5f;
};

struct ReluOp {};
struct AddOp {};

// ResNet "option A" shortcut: x[:, :, ::stride, ::stride], then zero channels on both sides.
struct ZeroPadShortcutOp {
  int64_t stride = 2;
  int64_t pad_channels_before = 0, pad_channels_after = 0;
};

struct GlobalAvgPoolOp {};  // (N,C,H,W) -> (N,C,1,1)

// Average pool. count_include_pad: torchvision counts padded cells in the mean, Keras does not.
struct AvgPoolOp {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool count_include_pad = true;
};

// Fully connected on the flattened input: (N, in_features) -> (N, out_features).
// Weight (out_features, in_features), as PyTorch's Linear.
struct DenseOp {
  int64_t in_features = 0, out_features = 0;
  bool has_bias = true;
};

struct SoftmaxOp {};  // over dimension 1 of (N, K)

// Max pool; padded cells never win (they act as -infinity).
struct MaxPoolOp {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

// Concatenation of any number of NCHW inputs along the channels, in input order.
struct ConcatOp {};

// y[:, c] = x[:, c] * scale[c] + shift[c], constants of the graph (torchvision's
// transform_input, which maps ImageNet-normalized inputs to the [-1, 1] scaling).
struct ChannelAffineOp {
  std::vector<float> scale, shift;
};

// y = min(max(x, min), max) (ONNX Clip; ReLU6 is Clip(0, 6)). The gradient passes where
// min < x < max, which is where min < y < max (PyTorch's hardtanh rule).
struct ClipOp {
  float min = 0.f, max = 0.f;
};

// A strided window of (C,H,W), per axis in that order: output index i reads input index
// start + i * step, for `size` indices (ONNX Slice with positive steps; the batch is never
// sliced). x[:, :, ::2, ::2] is start {0,0,0}, step {1,2,2}.
struct SliceOp {
  int64_t start[3] = {0, 0, 0};
  int64_t step[3] = {1, 1, 1};
  int64_t size[3] = {0, 0, 0};
};

// Constant padding of (C,H,W): `before`/`after` cells per axis, in that order, filled with
// `value` (ONNX Pad, mode "constant", non-negative pads).
struct PadOp {
  int64_t before[3] = {0, 0, 0};
  int64_t after[3] = {0, 0, 0};
  float value = 0.f;
};

using OpParams = std::variant<InputOp, Conv2dOp, BatchNormOp, ReluOp, AddOp, ZeroPadShortcutOp, GlobalAvgPoolOp,
                              AvgPoolOp, DenseOp, SoftmaxOp, MaxPoolOp, ConcatOp, ChannelAffineOp, ClipOp, SliceOp,
                              PadOp>;

// "conv2d", "batch_norm", ... (the name `veto info` prints)
std::string op_name(const OpParams& op);

// Number of inputs the op takes (0 for Input, 2 for Add, -1 for Concat: one or more).
int op_arity(const OpParams& op);

// Output shape for the given input shapes (batch included); throws veto::Error naming
// `node` when the inputs do not fit the op.
Shape infer_shape(const OpParams& op, const std::vector<Shape>& inputs, const std::string& node);

// The parameter tensors of a node named `node`: PyTorch naming ("conv1.weight",
// "bn1.running_var", ...) with their shapes, in a fixed order.
struct ParamSpec {
  std::string name;
  Shape shape;
};
std::vector<ParamSpec> param_specs(const OpParams& op, const std::string& node);

// What every Conv2dKernel::set_filters checks: the weights were set, `weight` is given, and
// every filter is in range and listed once. Returns one filter's value count. `what` names
// the kernel in the message.
int64_t check_conv_filters(const Conv2dOp& op, const std::vector<int64_t>& filters, const float* weight,
                           bool weights_set, const std::string& what);

// Multiply-accumulates per sample (for GFLOP/s counters and `veto info`).
int64_t op_macs(const OpParams& op, const Shape& output);

}  // namespace veto
