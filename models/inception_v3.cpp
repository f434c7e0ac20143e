// InceptionV3, torchvision and Keras variants from one builder. Node and parameter names are
// torchvision's (Conv2d_1a_3x3.conv, Mixed_5b.branch1x1.bn, fc); the 11 block outputs are
// named mixed0..mixed10 (Keras) with the aliases Mixed_5b..Mixed_7c (torchvision).
//
// The variants differ in two places only: the 3x3/1 average pool of the branch_pool paths
// counts padded cells in torchvision and not in Keras (padding="same"), and torchvision's
// transform_input (when set) maps ImageNet-normalized inputs to [-1, 1] before the stem.
// Every other convolution pads symmetrically in both ("same" at stride 1, "valid" at stride 2).
#include "models/builders.h"

#include "runtime/error.h"

namespace veto {
namespace {

class InceptionBuilder {
 public:
  InceptionBuilder(Graph& g, bool keras, int64_t width_divisor) : g_(g), keras_(keras), divisor_(width_divisor) {}

  // BasicConv2d: conv (no bias) -> BN (eps 1e-3) -> ReLU; the ReLU output carries `name`.
  int conv(const std::string& name, int input, int64_t out_channels, int64_t kh, int64_t kw, int64_t stride = 1,
           int64_t pad_h = 0, int64_t pad_w = 0) {
    VETO_CHECK(out_channels % divisor_ == 0, "inception_v3: width divisor ", divisor_, " does not divide ",
               out_channels);
    Conv2dOp op;
    op.in_channels = g_.node(input).shape[1];
    op.out_channels = out_channels / divisor_;
    op.kernel_h = kh;
    op.kernel_w = kw;
    op.stride_h = op.stride_w = stride;
    op.pad_top = op.pad_bottom = pad_h;
    op.pad_left = op.pad_right = pad_w;
    int x = g_.add(name + ".conv", op, {input});
    x = g_.add(name + ".bn", BatchNormOp{op.out_channels, 1e-3f}, {x});
    return g_.add(name, ReluOp{}, {x});
  }

  int max_pool(const std::string& name, int input) {
    return g_.add(name, MaxPoolOp{3, 3, 2, 2, 0, 0, 0, 0}, {input});
  }

  // The branch_pool path's 3x3/1 average pool.
  int avg_pool_3x3(const std::string& name, int input) {
    return g_.add(name, AvgPoolOp{3, 3, 1, 1, 1, 1, 1, 1, !keras_}, {input});
  }

  int concat(const std::string& name, std::vector<int> inputs) { return g_.add(name, ConcatOp{}, std::move(inputs)); }

  // The concatenation ending block `torch_name` (Mixed_5b...): named mixed0, mixed1, ... in
  // order, with the torchvision name as an alias.
  int block_output(const std::string& torch_name, std::vector<int> inputs) {
    const std::string name = "mixed" + std::to_string(blocks_++);
    const int x = concat(name, std::move(inputs));
    g_.add_alias(torch_name, name);
    g_.mark_block(x);
    return x;
  }

  int inception_a(const std::string& p, int x, int64_t pool_features) {
    const int b1 = conv(p + ".branch1x1", x, 64, 1, 1);
    int b5 = conv(p + ".branch5x5_1", x, 48, 1, 1);
    b5 = conv(p + ".branch5x5_2", b5, 64, 5, 5, 1, 2, 2);
    int b3 = conv(p + ".branch3x3dbl_1", x, 64, 1, 1);
    b3 = conv(p + ".branch3x3dbl_2", b3, 96, 3, 3, 1, 1, 1);
    b3 = conv(p + ".branch3x3dbl_3", b3, 96, 3, 3, 1, 1, 1);
    const int bp = conv(p + ".branch_pool", avg_pool_3x3(p + ".avg_pool", x), pool_features, 1, 1);
    return block_output(p, {b1, b5, b3, bp});
  }

  int inception_b(const std::string& p, int x) {
    const int b3 = conv(p + ".branch3x3", x, 384, 3, 3, 2);
    int bd = conv(p + ".branch3x3dbl_1", x, 64, 1, 1);
    bd = conv(p + ".branch3x3dbl_2", bd, 96, 3, 3, 1, 1, 1);
    bd = conv(p + ".branch3x3dbl_3", bd, 96, 3, 3, 2);
    const int bp = max_pool(p + ".max_pool", x);
    return block_output(p, {b3, bd, bp});
  }

  int inception_c(const std::string& p, int x, int64_t c7) {
    const int b1 = conv(p + ".branch1x1", x, 192, 1, 1);
    int b7 = conv(p + ".branch7x7_1", x, c7, 1, 1);
    b7 = conv(p + ".branch7x7_2", b7, c7, 1, 7, 1, 0, 3);
    b7 = conv(p + ".branch7x7_3", b7, 192, 7, 1, 1, 3, 0);
    int bd = conv(p + ".branch7x7dbl_1", x, c7, 1, 1);
    bd = conv(p + ".branch7x7dbl_2", bd, c7, 7, 1, 1, 3, 0);
    bd = conv(p + ".branch7x7dbl_3", bd, c7, 1, 7, 1, 0, 3);
    bd = conv(p + ".branch7x7dbl_4", bd, c7, 7, 1, 1, 3, 0);
    bd = conv(p + ".branch7x7dbl_5", bd, 192, 1, 7, 1, 0, 3);
    const int bp = conv(p + ".branch_pool", avg_pool_3x3(p + ".avg_pool", x), 192, 1, 1);
    return block_output(p, {b1, b7, bd, bp});
  }

  int inception_d(const std::string& p, int x) {
    int b3 = conv(p + ".branch3x3_1", x, 192, 1, 1);
    b3 = conv(p + ".branch3x3_2", b3, 320, 3, 3, 2);
    int b7 = conv(p + ".branch7x7x3_1", x, 192, 1, 1);
    b7 = conv(p + ".branch7x7x3_2", b7, 192, 1, 7, 1, 0, 3);
    b7 = conv(p + ".branch7x7x3_3", b7, 192, 7, 1, 1, 3, 0);
    b7 = conv(p + ".branch7x7x3_4", b7, 192, 3, 3, 2);
    const int bp = max_pool(p + ".max_pool", x);
    return block_output(p, {b3, b7, bp});
  }

  int inception_e(const std::string& p, int x) {
    const int b1 = conv(p + ".branch1x1", x, 320, 1, 1);
    const int b3 = conv(p + ".branch3x3_1", x, 384, 1, 1);
    const int b3a = conv(p + ".branch3x3_2a", b3, 384, 1, 3, 1, 0, 1);
    const int b3b = conv(p + ".branch3x3_2b", b3, 384, 3, 1, 1, 1, 0);
    const int b3cat = concat(p + ".branch3x3", {b3a, b3b});
    int bd = conv(p + ".branch3x3dbl_1", x, 448, 1, 1);
    bd = conv(p + ".branch3x3dbl_2", bd, 384, 3, 3, 1, 1, 1);
    const int bda = conv(p + ".branch3x3dbl_3a", bd, 384, 1, 3, 1, 0, 1);
    const int bdb = conv(p + ".branch3x3dbl_3b", bd, 384, 3, 1, 1, 1, 0);
    const int bdcat = concat(p + ".branch3x3dbl", {bda, bdb});
    const int bp = conv(p + ".branch_pool", avg_pool_3x3(p + ".avg_pool", x), 192, 1, 1);
    return block_output(p, {b1, b3cat, bdcat, bp});
  }

 private:
  Graph& g_;
  bool keras_;
  int64_t divisor_;
  int blocks_ = 0;
};

}  // namespace

Graph build_inception_v3(const InceptionV3Config& c) {
  VETO_CHECK(c.variant == "torchvision" || c.variant == "keras", "inception_v3: unknown variant '", c.variant,
             "' (expected torchvision or keras)");
  VETO_CHECK(c.width_divisor == 1 || c.width_divisor == 2 || c.width_divisor == 4 || c.width_divisor == 8,
             "inception_v3: width divisor must be 1, 2, 4 or 8, got ", c.width_divisor);
  VETO_CHECK(c.height >= 75 && c.width >= 75, "inception_v3: input must be at least 75x75, got ", c.height, "x",
             c.width);
  VETO_CHECK(c.num_classes > 0, "inception_v3: needs at least one class");
  VETO_CHECK(!c.transform_input || c.variant == "torchvision", "inception_v3: transform_input is torchvision's");
  Graph g;
  InceptionBuilder b(g, c.variant == "keras", c.width_divisor);
  int x = g.add("input", InputOp{Shape{3, c.height, c.width}});
  if (c.transform_input) {
    // torchvision: x[:, i] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 with the ImageNet statistics,
    // the constants computed in double (Python floats) and rounded to float once, as PyTorch
    // and its ONNX export use them.
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    ChannelAffineOp op;
    for (int i = 0; i < 3; ++i) {
      op.scale.push_back(static_cast<float>(std[i] / 0.5));
      op.shift.push_back(static_cast<float>((mean[i] - 0.5) / 0.5));
    }
    x = g.add("transform_input", op, {x});
  }
  x = b.conv("Conv2d_1a_3x3", x, 32, 3, 3, 2);
  x = b.conv("Conv2d_2a_3x3", x, 32, 3, 3);
  x = b.conv("Conv2d_2b_3x3", x, 64, 3, 3, 1, 1, 1);
  x = b.max_pool("maxpool1", x);
  x = b.conv("Conv2d_3b_1x1", x, 80, 1, 1);
  x = b.conv("Conv2d_4a_3x3", x, 192, 3, 3);
  x = b.max_pool("maxpool2", x);
  const char* torch_names[11] = {"Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                                 "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"};
  x = b.inception_a(torch_names[0], x, 32);
  x = b.inception_a(torch_names[1], x, 64);
  x = b.inception_a(torch_names[2], x, 64);
  x = b.inception_b(torch_names[3], x);
  x = b.inception_c(torch_names[4], x, 128);
  x = b.inception_c(torch_names[5], x, 160);
  x = b.inception_c(torch_names[6], x, 160);
  x = b.inception_c(torch_names[7], x, 192);
  x = b.inception_d(torch_names[8], x);
  x = b.inception_e(torch_names[9], x);
  x = b.inception_e(torch_names[10], x);
  x = g.add("avgpool", GlobalAvgPoolOp{}, {x});
  g.add("fc", DenseOp{g.node(x).shape[1], c.num_classes, true}, {x});
  return g;
}

}  // namespace veto
