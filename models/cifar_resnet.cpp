// The CIFAR-10 ResNets: akamaster/pytorch_resnet_cifar10 (depth 20/32/44/56) and the Keras
// example ResNet20 v1. Both name their layers the PyTorch way: conv1, bn1, relu,
// layer{1,2,3}.{b} (block output after add + ReLU), avgpool, linear.
#include "models/builders.h"

#include "runtime/error.h"

namespace veto {
namespace {

// TensorFlow "same" padding along one axis: the odd pixel goes after.
std::pair<int64_t, int64_t> same_padding(int64_t in, int64_t kernel, int64_t stride) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

struct ResnetStyle {
  bool keras = false;  // conv bias, "same" padding, projection shortcuts, BN eps 1e-3
  float eps() const { return keras ? 1e-3f : 1e-5f; }
};

int conv(Graph& g, const ResnetStyle& style, const std::string& name, int input, int64_t out_channels,
         int64_t kernel, int64_t stride) {
  const Shape& in = g.node(input).shape;
  Conv2dOp op;
  op.in_channels = in[1];
  op.out_channels = out_channels;
  op.kernel_h = op.kernel_w = kernel;
  op.stride_h = op.stride_w = stride;
  if (style.keras) {
    std::tie(op.pad_top, op.pad_bottom) = same_padding(in[2], kernel, stride);
    std::tie(op.pad_left, op.pad_right) = same_padding(in[3], kernel, stride);
    op.has_bias = true;
  } else {
    op.pad_top = op.pad_bottom = op.pad_left = op.pad_right = kernel / 2;
  }
  return g.add(name, op, {input});
}

int batch_norm(Graph& g, const ResnetStyle& style, const std::string& name, int input) {
  return g.add(name, BatchNormOp{g.node(input).shape[1], style.eps()}, {input});
}

// One BasicBlock; the shortcut is built first so the residual add can be fused into conv2.
int basic_block(Graph& g, const ResnetStyle& style, const std::string& prefix, int input, int64_t planes,
                int64_t stride) {
  const int64_t in_planes = g.node(input).shape[1];
  int shortcut = input;
  if (stride != 1 || in_planes != planes) {
    if (style.keras) {
      shortcut = conv(g, style, prefix + ".shortcut", input, planes, 1, stride);
    } else {
      const int64_t pad = planes / 4;
      VETO_CHECK(in_planes + 2 * pad == planes, "resnet: option-A shortcut cannot map ", in_planes, " to ", planes,
                 " channels");
      shortcut = g.add(prefix + ".shortcut", ZeroPadShortcutOp{stride, pad, pad}, {input});
    }
  }
  int x = conv(g, style, prefix + ".conv1", input, planes, 3, stride);
  x = batch_norm(g, style, prefix + ".bn1", x);
  x = g.add(prefix + ".relu", ReluOp{}, {x});
  x = conv(g, style, prefix + ".conv2", x, planes, 3, 1);
  x = batch_norm(g, style, prefix + ".bn2", x);
  x = g.add(prefix + ".add", AddOp{}, {x, shortcut});
  return g.add(prefix, ReluOp{}, {x});
}

Graph build_resnet(const ResnetStyle& style, int blocks_per_stage) {
  Graph g;
  int x = g.add("input", InputOp{Shape{3, 32, 32}});
  x = conv(g, style, "conv1", x, 16, 3, 1);
  x = batch_norm(g, style, "bn1", x);
  x = g.add("relu", ReluOp{}, {x});
  const int64_t planes[3] = {16, 32, 64};
  for (int stage = 0; stage < 3; ++stage)
    for (int b = 0; b < blocks_per_stage; ++b) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      x = basic_block(g, style, prefix, x, planes[stage], (stage > 0 && b == 0) ? 2 : 1);
      g.mark_block(x);
    }
  if (style.keras)
    x = g.add("avgpool", AvgPoolOp{8, 8, 8, 8, 0, 0, 0, 0, true}, {x});
  else
    x = g.add("avgpool", GlobalAvgPoolOp{}, {x});
  g.add("linear", DenseOp{64, 10, true}, {x});
  return g;
}

}  // namespace

Graph build_cifar_resnet(int depth) {
  VETO_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2, got ", depth);
  return build_resnet(ResnetStyle{false}, (depth - 2) / 6);
}

Graph build_keras_resnet20v1() { return build_resnet(ResnetStyle{true}, 3); }

}  // namespace veto
