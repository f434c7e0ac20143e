// InceptionV3: the graph's structure, and both variants against their frameworks on the
// reduced-width fixtures made by weights_tools (full size: weights_tools/check_inception_full.py).
#include <gtest/gtest.h>

#include <cmath>

#include "models/builders.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/io/npy.h"
#include "runtime/model.h"

namespace veto {
namespace {

TEST(InceptionV3, MixedBlocksHaveThePapersWidthsAndBothNames) {
  InceptionV3Config c;
  const Graph g = build_inception_v3(c);
  const int64_t widths[11] = {256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048};
  const int64_t sizes[11] = {35, 35, 35, 17, 17, 17, 17, 17, 8, 8, 8};
  const char* aliases[11] = {"Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                             "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"};
  int64_t features = 0;
  for (int i = 0; i < 11; ++i) {
    const std::string name = "mixed" + std::to_string(i);
    const Node& n = g.node(g.find(name));
    EXPECT_EQ(n.shape, (Shape{1, widths[i], sizes[i], sizes[i]})) << name;
    EXPECT_EQ(g.find(aliases[i]), g.find(name)) << aliases[i];
    features += widths[i];
  }
  EXPECT_EQ(features, 10048);  // METHOD.md: the conductance features of all 11 blocks
  // 94 convolutions with BN (5 tensors each) and the classifier: torchvision's state_dict
  // without the aux classifier.
  int convs = 0;
  for (const Node& n : g.nodes()) convs += std::holds_alternative<Conv2dOp>(n.op);
  EXPECT_EQ(convs, 94);
  EXPECT_EQ(g.param_specs().size(), 94u * 5 + 2);
  EXPECT_EQ(g.node(g.output()).shape, (Shape{1, 1000}));
}

TEST(InceptionV3, VariantsDifferOnlyInBranchPoolPaddingAndTransformInput) {
  InceptionV3Config torch, keras;
  torch.transform_input = true;
  keras.variant = "keras";
  const Graph a = build_inception_v3(torch), b = build_inception_v3(keras);
  EXPECT_TRUE(a.contains("transform_input"));
  EXPECT_FALSE(b.contains("transform_input"));
  const auto& pa = std::get<AvgPoolOp>(a.node(a.find("Mixed_5b.avg_pool")).op);
  const auto& pb = std::get<AvgPoolOp>(b.node(b.find("Mixed_5b.avg_pool")).op);
  EXPECT_TRUE(pa.count_include_pad);
  EXPECT_FALSE(pb.count_include_pad);
  EXPECT_EQ(a.size(), b.size() + 1);
}

TEST(InceptionV3, ReducedWidthAndCustomHead) {
  InceptionV3Config c;
  c.width_divisor = 8;
  c.height = c.width = 139;
  c.num_classes = 50;  // the paper's ImageNet-50 head
  const Graph g = build_inception_v3(c);
  EXPECT_EQ(g.node(g.find("mixed10")).shape, (Shape{1, 256, 3, 3}));
  EXPECT_EQ(g.node(g.output()).shape, (Shape{1, 50}));
  c.height = 74;
  EXPECT_THROW(build_inception_v3(c), Error);
  c.height = 139;
  c.width_divisor = 3;
  EXPECT_THROW(build_inception_v3(c), Error);
}

// Relative L2 distance of two equally long arrays.
double relative_l2(const Tensor& got, const Tensor& want) {
  double d = 0, w = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    d += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    w += double(want[i]) * want[i];
  }
  return std::sqrt(d / w);
}

Tensor first_sample(const Tensor& t) {
  const int64_t n = t.numel() / t.shape()[0];
  Shape s = t.shape();
  s[0] = 1;
  return Tensor(s, std::vector<float>(t.data(), t.data() + n));
}

class InceptionV3Golden : public testing::TestWithParam<std::string> {};

// The reduced-width fixtures (width / 8, 139x139, 10 classes, random weights with randomized
// BN statistics) against the framework that made them, on its own preprocessed photos.
TEST_P(InceptionV3Golden, MatchesItsFramework) {
  const std::string dir = VETO_TEST_DATA_DIR, stem = "inception_v3_" + GetParam() + "_w8";
  const Model m = load_model(dir + "/" + stem + ".safetensors");
  const Tensor inputs = read_npy(dir + "/golden/" + stem + "_inputs.npy");
  const Tensor logits = read_npy(dir + "/golden/" + stem + "_logits.npy");
  auto cpu = make_backend("cpu");
  const PlanOptions keep{true, {"mixed0", "Mixed_7c"}};
  Plan fast(m, *cpu, inputs.shape()[0], keep);
  fast.forward(inputs.data());
  EXPECT_LE(relative_l2(fast.logits(), logits), 1e-4) << "logits";
  for (const char* layer : {"mixed0", "mixed10"}) {
    const Tensor want = read_npy(dir + "/golden/" + stem + "_" + layer + ".npy");
    const Tensor got = first_sample(fast.output(layer == std::string("mixed10") ? "Mixed_7c" : layer));
    ASSERT_EQ(got.shape(), want.shape()) << layer;
    EXPECT_LE(relative_l2(got, want), 1e-4) << layer;
  }
  // The unfused reference backend agrees with the fused fast path.
  auto ref = make_backend("reference");
  Plan oracle(m, *ref, 1, PlanOptions{false, {}});
  oracle.forward(inputs.data());
  EXPECT_LE(relative_l2(oracle.logits(), first_sample(logits)), 1e-4) << "reference backend";
}

INSTANTIATE_TEST_SUITE_P(BothVariants, InceptionV3Golden, testing::Values("torchvision", "keras"));

}  // namespace
}  // namespace veto
