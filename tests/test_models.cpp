// Whole models: the fast CPU backend against the reference backend, and both against golden
// logits dumped by PyTorch / Keras (weights_tools/golden_cifar.py, make_keras_fixture.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "models/builders.h"
#include "runtime/dataset.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/inference.h"
#include "runtime/io/npy.h"
#include "runtime/io/safetensors.h"
#include "runtime/model.h"
#include "tests/op_test_util.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;
const std::string kData = VETO_TEST_DATA_DIR;
const std::string kCifar = kRepo + "/data/cifar10_test_0-999.bin";
const std::string kResnet20 = kRepo + "/models/resnet20.safetensors";

// Relative L2 distance between two rows.
double relative_l2(const float* got, const float* want, int64_t n) {
  double d = 0, w = 0;
  for (int64_t i = 0; i < n; ++i) {
    d += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    w += double(want[i]) * want[i];
  }
  return std::sqrt(d / std::max(w, 1e-30));
}

void expect_rows_close(const Tensor& got, const Tensor& want, double tolerance, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const int64_t rows = got.shape()[0], cols = got.shape()[1];
  double worst = 0;
  int64_t worst_row = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double e = relative_l2(got.data() + r * cols, want.data() + r * cols, cols);
    if (e > worst) worst = e, worst_row = r;
  }
  EXPECT_LE(worst, tolerance) << what << ": worst relative L2 error at row " << worst_row;
}

Tensor first_records(const Model& m, int64_t n) {
  auto ds = open_cifar_dataset(kCifar, m.preprocess, n);
  Tensor x(Shape{n, 3, 32, 32});
  ds->load_batch(0, n, x.data());
  return x;
}

TEST(CifarResnet, PreprocessingMatchesTorchvision) {
  const Model m = load_model(kResnet20);
  const Tensor want = read_npy(kData + "/golden/resnet20_inputs_0-7.npy");
  const Tensor got = first_records(m, 8);
  ASSERT_EQ(got.shape(), want.shape());
  expect_close(got.data(), want.data(), got.numel(), 1e-6f, 1e-6f, "preprocessed CIFAR records 0-7");
}

TEST(CifarResnet, Resnet20MatchesPyTorchOnTheExactRecords) {
  const Model m = load_model(kResnet20);
  const Tensor golden = read_npy(kData + "/golden/resnet20_logits_0-999.npy");
  auto cpu = make_backend("cpu");
  auto ds = open_cifar_dataset(kCifar, m.preprocess);
  const InferenceResult r = run_inference(m, *cpu, *ds, 256);
  expect_rows_close(r.logits, golden, 1e-4, "resnet20 logits vs PyTorch");
  const std::vector<int> want = argmax_rows(golden);
  int64_t agree = 0, correct = 0;
  for (int64_t i = 0; i < ds->size(); ++i) {
    agree += r.predictions[i] == want[i];
    correct += r.predictions[i] == ds->label(i);
  }
  EXPECT_GE(agree, 999) << "predictions must agree with PyTorch on >= 99.9% of records";
  EXPECT_EQ(correct, 915) << "PyTorch gets 915/1000 on records 0-999";
}

TEST(CifarResnet, FastBackendMatchesReferenceBackendUnfused) {
  const Model m = load_model(kResnet20);
  const Tensor x = first_records(m, 3);
  auto cpu = make_backend("cpu");
  auto ref = make_backend("reference");
  Plan fast(m, *cpu, 3);
  Plan oracle(m, *ref, 3, PlanOptions{false, {}});
  fast.forward(x.data());
  oracle.forward(x.data());
  expect_rows_close(fast.logits(), oracle.logits(), 1e-5, "fused CPU vs unfused reference");
}

TEST(CifarResnet, LogitsDoNotDependOnTheBatchSize) {
  const Model m = load_model(kResnet20);
  auto cpu = make_backend("cpu");
  auto ds = open_cifar_dataset(kCifar, m.preprocess, 13);
  const Tensor one = run_inference(m, *cpu, *ds, 1).logits;
  const Tensor five = run_inference(m, *cpu, *ds, 5).logits;  // 5 + 5 + 3: two plans
  expect_rows_close(five, one, 1e-5, "batch 5 vs batch 1");
}

TEST(CifarResnet, KeptLayersAreReadableAndFusedOnesAreNot) {
  const Model m = load_model(kResnet20);
  const Tensor x = first_records(m, 2);
  auto cpu = make_backend("cpu");
  auto ref = make_backend("reference");
  Plan fast(m, *cpu, 2, PlanOptions{true, {"layer1.0", "layer3.2", "layer2.0.bn1"}});
  Plan oracle(m, *ref, 2, PlanOptions{false, {"layer1.0", "layer3.2", "layer2.0.bn1"}});
  fast.forward(x.data());
  oracle.forward(x.data());
  for (const char* layer : {"layer1.0", "layer3.2", "layer2.0.bn1"}) {
    const Tensor a = fast.output(layer), b = oracle.output(layer);
    ASSERT_EQ(a.shape(), b.shape()) << layer;
    expect_close(a.data(), b.data(), a.numel(), 1e-4f, 1e-5f, layer);
  }
  EXPECT_EQ(fast.output("layer3.2").shape(), (Shape{2, 64, 8, 8}));
  try {
    fast.output("layer1.1.conv1");
    FAIL() << "a fused-away layer must not be readable";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was not kept"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Plan(m, *cpu, 1, PlanOptions{true, {"layer9.9"}}), Error);
}

ArchSpec cifar_spec(const std::string& arch) { return ArchSpec{arch, {}, 32, 32, 10}; }

TEST(CifarResnet, GraphsDeclareExactlyTheCheckpointTensors) {
  // akamaster's checkpoints hold 97/157/217/277 tensors (conv 1, BN 4, linear 2).
  const std::pair<const char*, size_t> cases[] = {
      {"resnet20", 97}, {"resnet32", 157}, {"resnet44", 217}, {"resnet56", 277}};
  for (auto [arch, tensors] : cases) {
    const Graph g = build_graph(cifar_spec(arch));
    EXPECT_EQ(g.param_specs().size(), tensors) << arch;
    EXPECT_EQ(g.node(g.output()).shape, (Shape{1, 10})) << arch;
  }
  // Keras ResNet20v1: 21 convs with bias, 19 BN, one dense.
  EXPECT_EQ(build_graph(cifar_spec("keras_resnet20v1")).param_specs().size(), 21u * 2 + 19 * 4 + 2);
  // Stage outputs and the layer names other commands select.
  const Graph g = build_graph(cifar_spec("resnet56"));
  EXPECT_EQ(g.node(g.find("layer3.8")).shape, (Shape{1, 64, 8, 8}));
  EXPECT_EQ(g.node(g.find("layer2.0")).shape, (Shape{1, 32, 16, 16}));
  EXPECT_THROW(build_graph(cifar_spec("resnet21")), Error);
}

TEST(KerasResnet20v1, MatchesTensorFlowOnRandomWeights) {
  const Model m = load_model(kData + "/keras_resnet20v1_random.safetensors");
  EXPECT_EQ(m.arch, "keras_resnet20v1");
  const Tensor golden = read_npy(kData + "/golden/keras_resnet20v1_random_logits_0-15.npy");
  const Tensor x = first_records(m, 16);
  auto cpu = make_backend("cpu");
  auto ref = make_backend("reference");
  Plan fast(m, *cpu, 16);
  Plan oracle(m, *ref, 16, PlanOptions{false, {}});
  fast.forward(x.data());
  oracle.forward(x.data());
  expect_rows_close(fast.logits(), golden, 1e-4, "keras_resnet20v1 CPU vs TensorFlow");
  expect_rows_close(oracle.logits(), golden, 1e-4, "keras_resnet20v1 reference vs TensorFlow");
}

// load_model = find the file + read_safetensors + parse_model; the last runs in memory.
TEST(ModelFile, ParseModelValidatesAnInMemoryFile) {
  const Model loaded = load_model(kResnet20);
  SafetensorsFile file = read_safetensors(kResnet20);
  const Model parsed = parse_model(file, "mem.safetensors");
  EXPECT_EQ(parsed.source, "mem.safetensors");
  EXPECT_EQ(parsed.arch, loaded.arch);
  EXPECT_EQ(parsed.classes, loaded.classes);
  ASSERT_EQ(parsed.params.size(), loaded.params.size());
  EXPECT_TRUE(std::equal(parsed.params.data(), parsed.params.data() + parsed.params.size(), loaded.params.data()));
  file.tensors.pop_back();
  try {
    parse_model(file, "mem.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("mem.safetensors: missing tensor '", 0), 0u) << e.what();
  }
}

std::string model_error(const SafetensorsFile& file) {
  try {
    parse_model(file, "m.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Found in review for fuzz_model, reproduced with it (corpus: regress-preprocess-float-*):
// nlohmann casts a JSON float to int64 unchecked, undefined for 1e30; such sizes are now
// refused by name.
TEST(ModelFile, OutOfRangePreprocessNumbersAreErrors) {
  SafetensorsFile file = read_safetensors(kResnet20);
  const std::string good = file.metadata["preprocess"];
  auto with = [&](const std::string& from, const std::string& to) {
    SafetensorsFile f = file;
    std::string& text = f.metadata["preprocess"];
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    return f;
  };
  EXPECT_EQ(model_error(with("\"height\":32", "\"height\":1e30")),
            "m.safetensors: metadata 'preprocess' is malformed: 'height' is out of range");
  EXPECT_EQ(model_error(with("\"resize_shorter\":0", "\"resize_shorter\":-1e300")),
            "m.safetensors: metadata 'preprocess' is malformed: 'resize_shorter' is out of range");
  // Integral floats were accepted before and still are.
  EXPECT_EQ(parse_model(with("\"height\":32", "\"height\":32.0"), "m").preprocess.height, 32);
  EXPECT_NE(model_error(with("\"width\":32", "\"width\":\"32\"")).find("'preprocess' is malformed: [json"),
            std::string::npos);
}

// The tensors are checked before the parameter arena is allocated (a few-KB inception_v3
// header with thousands of class names used to cost ~100 MB first), in the same order and
// with the same messages as before.
TEST(ModelFile, TensorsAreCheckedInOrderBeforeTheArenaExists) {
  SafetensorsFile file = read_safetensors(kResnet20);
  const float nan = std::nanf("");
  for (SafeTensor& t : file.tensors)
    if (t.name == "conv1.weight") std::memcpy(t.bytes.data() + 4 * 5, &nan, 4);
  file.tensors.pop_back();  // a later tensor is missing too; the earlier problem is reported
  EXPECT_EQ(model_error(file), "m.safetensors: tensor 'conv1.weight' has a non-finite value (nan) at flat index 5");

  SafetensorsFile inception;
  inception.metadata = {{"format", "veto-model/1"},
                        {"arch", "inception_v3"},
                        {"preprocess", R"({"channels":3,"height":299,"width":299,"divisor":255.0,)"
                                       R"("mean":[0,0,0],"std":[1,1,1]})"},
                        {"classes", nlohmann::json(std::vector<std::string>(5000, "x")).dump()}};
  EXPECT_EQ(model_error(inception).rfind("m.safetensors: missing tensor '", 0), 0u) << model_error(inception);
}

// Metadata JSON is parsed with a nesting bound: a crafted file with deeply nested classes
// must not exhaust the stack (nlohmann destroys nested values recursively).
TEST(ModelFile, DeeplyNestedMetadataJsonIsRefused) {
  SafetensorsFile file = read_safetensors(kResnet20);
  file.metadata["classes"] = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_EQ(model_error(file), "m.safetensors: metadata 'classes' is nested deeper than 8 levels");
}

// The fingerprint derived files record: the same for the same model, different for other
// weights, another variant of the graph or other class names.
TEST(ModelFile, FingerprintIdentifiesWeightsGraphAndClasses) {
  const Model a = load_model(kResnet20);
  const std::string fa = model_fingerprint(a);
  ASSERT_EQ(fa.size(), std::string("fnv1a64:").size() + 16) << fa;
  EXPECT_EQ(fa.rfind("fnv1a64:", 0), 0u) << fa;
  EXPECT_EQ(model_fingerprint(load_model(kResnet20)), fa);
  Model b = load_model(kResnet20);
  b.params.get("layer2.1.conv1.weight")[7] += 1e-6f;
  EXPECT_NE(model_fingerprint(b), fa);
  Model c = load_model(kResnet20);
  std::swap(c.classes[0], c.classes[1]);
  EXPECT_NE(model_fingerprint(c), fa);
  Model d = load_model(kResnet20);
  d.metadata["license"] = "another licence text";
  EXPECT_EQ(model_fingerprint(d), fa);
  EXPECT_NE(model_fingerprint(load_model(kData + "/inception_v3_torchvision_w8.safetensors")),
            model_fingerprint(load_model(kData + "/inception_v3_keras_w8.safetensors")));
}

}  // namespace
}  // namespace veto
