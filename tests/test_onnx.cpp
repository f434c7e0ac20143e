// ONNX import (runtime/onnx_import.cpp) and written-out graphs (runtime/graph_json.cpp).
// Fixtures in tests/data/onnx come from weights_tools/export_onnx.py (see data/README.md):
// tiny*.onnx use every op the importer lowers, with PyTorch's logits for tiny_x.npy;
// resnet20.onnx is the akamaster ResNet-20 with its real weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <map>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/backend.h"
#include "runtime/dataset.h"
#include "runtime/error.h"
#include "runtime/graph_json.h"
#include "runtime/inference.h"
#include "runtime/io/npy.h"
#include "runtime/io/safetensors.h"
#include "runtime/model.h"
#include "runtime/onnx_import.h"
#include "tests/cli_run.h"

#ifdef VETO_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace veto {
namespace {

namespace fs = std::filesystem;
const std::string kOnnx = std::string(VETO_TEST_DATA_DIR) + "/onnx";
const std::string kRepo = VETO_REPO_DIR;
const std::string kCifar = kRepo + "/data/cifar10_test_0-999.bin";

#define SKIP_WITHOUT_ONNX() \
  if (!onnx_available()) GTEST_SKIP() << "this build has no ONNX support (libonnx-dev)"

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string file_bytes(const std::string& path) { return test::slurp(path); }

Tensor logits_of(const Model& m, const std::string& backend, const Dataset& data, int64_t batch) {
  auto b = make_backend(backend);
  b->set_threads(2);
  return run_inference(m, *b, data, batch).logits;
}

double max_relative(const Tensor& got, const Tensor& want) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

TEST(OnnxImport, TinyModelsMatchPyTorchOnEveryBackend) {
  SKIP_WITHOUT_ONNX();
  const Tensor want = read_npy(kOnnx + "/tiny_logits.npy");
  for (const char* file : {"tiny.onnx", "tiny_opset11.onnx"}) {
    const Model m = load_model(kOnnx + "/" + file);
    EXPECT_EQ(m.arch, "graph");
    EXPECT_EQ(m.classes.front(), "airplane");  // metadata_props veto.classes
    EXPECT_EQ(m.preprocess.height, 30);        // metadata_props veto.preprocess
    auto data = open_file_dataset({kOnnx + "/tiny_x.npy"}, m.preprocess, -1, m.classes);
    for (const char* backend : {"reference", "cpu"}) {
      const Tensor got = logits_of(m, backend, *data, 3);  // a full and a partial batch
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_LT(max_relative(got, want), 1e-5) << file << " on " << backend;
    }
  }
}

TEST(OnnxImport, TinyLowersOntoTheExpectedOps) {
  SKIP_WITHOUT_ONNX();
  const Model m = load_model(kOnnx + "/tiny.onnx");
  std::map<std::string, int> count;
  for (const Node& n : m.graph.nodes()) ++count[op_name(n.op)];
  // Gather + Mul + Add per channel -> slice + one merged channel_affine; the trailing
  // Shape/Gather/Concat/Reshape and the pads' constant subgraph leave no nodes.
  EXPECT_EQ(count["slice"], 3 + 2 + 2);
  EXPECT_EQ(count["channel_affine"], 3);
  EXPECT_EQ(count["clip"], 1);
  EXPECT_EQ(count["pad"], 3);
  EXPECT_EQ(count["dense"], 1);
  EXPECT_EQ(count["batch_norm"], 2);
  int grouped = 0, dilated = 0;
  for (const Node& n : m.graph.nodes())
    if (const auto* c = std::get_if<Conv2dOp>(&n.op)) grouped += c->groups > 1, dilated += c->dilation_h > 1;
  EXPECT_EQ(grouped, 2);  // the depthwise and the 2-group convolution
  EXPECT_EQ(dilated, 1);
  // Blocks: the residual add's ReLU and the branch concat; not the input re-normalization's concat.
  EXPECT_EQ(m.graph.blocks(), (std::vector<std::string>{"/Relu_2_output_0", "/Concat_3_output_0"}));
}

TEST(OnnxImport, Resnet20MatchesTheNativeModel) {
  SKIP_WITHOUT_ONNX();
  const Model imported = load_model(kOnnx + "/resnet20.onnx");
  const Model native = load_model(kRepo + "/models/resnet20.safetensors");
  EXPECT_EQ(imported.params.size(), native.params.size());
  EXPECT_EQ(imported.graph.blocks().size(), native.graph.blocks().size());
  EXPECT_EQ(imported.classes, native.classes);
  auto data = open_cifar_dataset(kCifar, native.preprocess, 40);
  const Tensor want = logits_of(native, "cpu", *data, 40), got = logits_of(imported, "cpu", *data, 40);
  // Not bit-identical: the head is AveragePool(8) instead of a global average pool.
  EXPECT_LT(max_relative(got, want), 1e-5);
}

// tf2onnx's export of a Keras model (weights_tools/export_onnx_keras.py, inputs_as_nchw): batch
// norms after the biased convolutions as Mul + Add by constants, Keras' Flatten as
// Reshape(x, [-1, 64]), the Dense as MatMul + Add. The random-weight Keras ResNet20v1 fixture.
TEST(OnnxImport, KerasResnet20v1FromTf2onnxMatchesTheNativeModelAndTensorFlow) {
  SKIP_WITHOUT_ONNX();
  const Model imported = load_model(kOnnx + "/keras_resnet20v1_random.onnx");
  const Model native = load_model(std::string(VETO_TEST_DATA_DIR) + "/keras_resnet20v1_random.safetensors");
  EXPECT_EQ(imported.graph.blocks().size(), 9u);
  EXPECT_EQ(imported.classes, native.classes);
  EXPECT_EQ(preprocess_to_json(imported.preprocess), preprocess_to_json(native.preprocess));
  auto data = open_cifar_dataset(kCifar, native.preprocess, 16);
  const Tensor want = logits_of(native, "cpu", *data, 16), got = logits_of(imported, "cpu", *data, 16);
  EXPECT_LT(max_relative(got, want), 1e-5);
  const Tensor tf = read_npy(std::string(VETO_TEST_DATA_DIR) + "/golden/keras_resnet20v1_random_logits_0-15.npy");
  EXPECT_LT(max_relative(got, tf), 1e-4);  // native vs TensorFlow: the same order (float32 summation order)
}

// Every command takes the imported model; conductance and LCR equal the native model's
// (same weights, same mutants: the import keeps batch norms as nodes, so the convolutions
// hold the native weights).
TEST(OnnxImport, ConductanceAndLcrEqualTheNativeModels) {
  SKIP_WITHOUT_ONNX();
  const fs::path dir = fs::temp_directory_path() / ("veto_onnx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string imported = (dir / "r20.safetensors").string();
  test::CliRun r = test::run_cli("", "import-onnx " + kOnnx + "/resnet20.onnx " + imported, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("9 blocks"), std::string::npos) << r.out;
  const std::string data = "--data " + kCifar + " --threads 2 ";
  for (const auto& [name, model] : {std::pair{"native", std::string("resnet20")}, {"onnx", imported}}) {
    const std::string d = (dir / name).string();
    r = test::run_cli("", "attribute --model " + model + " " + data + "--limit 6 --steps 4 --out " + d + "_attr.npy",
                      dir);
    ASSERT_EQ(r.code, 0) << r.err;
    r = test::run_cli("", "mutants build --model " + model + " " + data +
                              "--limit 100 --gamma 0.01 --count 3 --seed 7 --out " + d + "_mutants.safetensors",
                      dir);
    ASSERT_EQ(r.code, 0) << r.err;
    r = test::run_cli("", "lcr --model " + model + " --mutants " + d + "_mutants.safetensors " + data +
                              "--limit 60 --out " + d + "_lcr.safetensors",
                      dir);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  const Tensor a = read_npy((dir / "native_attr.npy").string()), b = read_npy((dir / "onnx_attr.npy").string());
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 + 1e-4 * std::fabs(a[i])) << "feature " << i;
  const SafetensorsFile la = read_safetensors((dir / "native_lcr.safetensors").string());
  const SafetensorsFile lb = read_safetensors((dir / "onnx_lcr.safetensors").string());
  for (const char* t : {"lcr", "mutant_prediction", "prediction"})
    EXPECT_EQ(la.get(t).bytes, lb.get(t).bytes) << t;
  // A mutant set is bound to its model: the native one is refused for the imported model.
  r = test::run_cli("", "lcr --model " + imported + " --mutants " + (dir / "native_mutants.safetensors").string() +
                            " " + data + "--limit 5 --out " + (dir / "x.safetensors").string(),
                    dir);
  EXPECT_EQ(r.code, 1);
  fs::remove_all(dir);
}

TEST(OnnxImport, ImportedFileLoadsAsTheSameModel) {
  SKIP_WITHOUT_ONNX();
  const std::string path = kOnnx + "/tiny.onnx";
  const SafetensorsFile file = onnx_to_model_file(file_bytes(path), path);
  const Model direct = load_model(path);
  const Model reloaded = parse_model(parse_safetensors(serialize_safetensors(file), "mem"), "mem");
  EXPECT_EQ(model_fingerprint(direct), model_fingerprint(reloaded));
  // The written-out graph survives a round trip through its text.
  EXPECT_EQ(graph_to_json(graph_from_json(file.metadata.at("graph"))), file.metadata.at("graph"));
}

TEST(OnnxImport, OptionsChoosePreprocessingAndClasses) {
  SKIP_WITHOUT_ONNX();
  const std::string path = kOnnx + "/tiny.onnx", bytes = file_bytes(path);
  OnnxImportOptions o;
  o.preprocess = "keras";
  Model m = parse_model(onnx_to_model_file(bytes, path, o), path);
  EXPECT_EQ(m.preprocess.divisor, 127.5f);
  EXPECT_EQ(m.preprocess.resize, "stretch");
  o.preprocess = "torchvision";
  m = parse_model(onnx_to_model_file(bytes, path, o), path);
  EXPECT_EQ(m.preprocess.resize_shorter, 34);  // 8/7 of 30, as 256 for 224
  o.preprocess = "sepia";
  EXPECT_NE(error_of([&] { onnx_to_model_file(bytes, path, o); }).find("neither a JSON object nor a preset"),
            std::string::npos);
  o.preprocess = R"({"channels":3,"height":32,"width":32,"divisor":255,"mean":[0,0,0],"std":[1,1,1]})";
  EXPECT_NE(error_of([&] { onnx_to_model_file(bytes, path, o); }).find("makes 32x32 inputs, the model takes 30x30"),
            std::string::npos);
  o.preprocess.clear();
  const fs::path names = fs::temp_directory_path() / ("veto_classes_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(names) << "a\nb\n";
  o.classes_file = names.string();
  EXPECT_NE(error_of([&] { onnx_to_model_file(bytes, path, o); }).find("2 class names, the model has 10 outputs"),
            std::string::npos);
  fs::remove(names);
}

TEST(OnnxImport, TruncatedAndGarbageFilesAreRefused) {
  SKIP_WITHOUT_ONNX();
  const std::string bytes = file_bytes(kOnnx + "/tiny.onnx");
  for (size_t keep : {size_t{0}, size_t{7}, bytes.size() / 2, bytes.size() - 3}) {
    const std::string msg = error_of([&] { onnx_to_model_file(bytes.substr(0, keep), "cut.onnx"); });
    EXPECT_EQ(msg.rfind("cut.onnx: ", 0), 0u) << keep << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { onnx_to_model_file(std::string(300, '\xff'), "junk.onnx"); }).find("not an ONNX model"),
            std::string::npos);
}

#ifdef VETO_HAVE_ONNX

// A one-input model built here: input "x" (dims; "" = a named dynamic dim) then `nodes`.
onnx::ModelProto make_model(int opset, const std::vector<std::string>& dims) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* g = m.mutable_graph();
  auto* in = g->add_input();
  in->set_name("x");
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (const std::string& d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d.empty() || !std::isdigit(static_cast<unsigned char>(d[0])))
      dim->set_dim_param(d.empty() ? "batch" : d);
    else
      dim->set_dim_value(std::stoll(d));
  }
  g->add_output()->set_name("y");
  return m;
}

onnx::NodeProto* add_node(onnx::ModelProto& m, const std::string& op, const std::vector<std::string>& in,
                          const std::string& out) {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + out);
  for (const auto& i : in) n->add_input(i);
  n->add_output(out);
  return n;
}

std::string import_error(const onnx::ModelProto& m) {
  return error_of([&] { onnx_to_model_file(m.SerializeAsString(), "m.onnx"); });
}

TEST(OnnxImport, UnsupportedOpsAreListedTogether) {
  onnx::ModelProto m = make_model(13, {"", "3", "8", "8"});
  add_node(m, "Erf", {"x"}, "a");
  add_node(m, "Relu", {"a"}, "b");
  add_node(m, "LSTM", {"b"}, "y");
  const std::string msg = import_error(m);
  EXPECT_NE(msg.find("m.onnx: 2 unsupported nodes: Erf_a (Erf), LSTM_y (LSTM)"), std::string::npos) << msg;
}

TEST(OnnxImport, OnlyTheBatchMayBeDynamic) {
  onnx::ModelProto m = make_model(13, {"", "3", "h", "8"});
  add_node(m, "Relu", {"x"}, "y");
  EXPECT_NE(import_error(m).find("dimension 2 is dynamic ('h'); only the batch dimension may be"), std::string::npos);
  onnx::ModelProto ok = make_model(13, {"", "3", "8", "8"});
  add_node(ok, "GlobalAveragePool", {"x"}, "y");
  const Model model = parse_model(onnx_to_model_file(ok.SerializeAsString(), "ok.onnx"), "ok.onnx");
  EXPECT_EQ(model.graph.node(model.graph.output()).shape, (Shape{1, 3, 1, 1}));
}

// Import-time shape arithmetic on untrusted dims (fuzz_onnx: a signed overflow).
TEST(OnnxImport, ConstantReshapeWhoseDimsOverflowIsRefused) {
  onnx::ModelProto m = make_model(13, {"", "3", "8", "8"});
  auto* shape = m.mutable_graph()->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(3);
  for (int i = 0; i < 3; ++i) shape->add_int64_data(int64_t{1} << 32);
  auto* c = m.mutable_graph()->add_initializer();
  c->set_name("c");
  c->set_data_type(onnx::TensorProto::FLOAT);
  c->add_dims(1);
  c->add_float_data(2.0f);
  add_node(m, "Reshape", {"c", "shape"}, "r");
  add_node(m, "Mul", {"x", "r"}, "y");
  const std::string msg = import_error(m);
  EXPECT_NE(msg.find("Reshape to dims whose product overflows"), std::string::npos) << msg;
}

TEST(OnnxImport, OpsetsOutsideSixToSeventeenAreRefused) {
  for (int opset : {5, 18}) {
    onnx::ModelProto m = make_model(opset, {"", "3", "8", "8"});
    add_node(m, "GlobalAveragePool", {"x"}, "y");
    EXPECT_NE(import_error(m).find("opset " + std::to_string(opset) + " is not supported (veto reads opsets 6 to 17)"),
              std::string::npos);
  }
}

TEST(OnnxImport, UnsupportedAttributesNameTheNode) {
  onnx::ModelProto m = make_model(13, {"", "3", "8", "8"});
  auto* w = m.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {4, 3, 3, 3}) w->add_dims(d);
  for (int i = 0; i < 4 * 27; ++i) w->add_float_data(0.1f);
  auto* conv = add_node(m, "Conv", {"x", "w"}, "y");
  auto* dil = conv->add_attribute();
  dil->set_name("dilations");
  dil->set_type(onnx::AttributeProto::INTS);
  dil->add_ints(0), dil->add_ints(2);
  EXPECT_NE(import_error(m).find("node 'Conv_y' (Conv): needs 2 dilations in [1, 1024]"), std::string::npos);
  w->clear_float_data();  // data that does not fit the dims
  conv->clear_attribute();
  EXPECT_NE(import_error(m).find("tensor 'w' has 0 values, its dims [4,3,3,3] need 108"), std::string::npos);
}

// Global pool heads as exporters write them: Squeeze of the 1x1 map (tf2onnx), Reshape with an
// inferred batch, [-1, C] (tf2onnx's Flatten); both views. Anything that would move data is refused.
TEST(OnnxImport, SqueezeAndReshapeOfAPooledMapAreViews) {
  const auto head = [](const std::string& op, const std::vector<int64_t>& ints) {
    onnx::ModelProto m = make_model(11, {"", "3", "8", "8"});
    add_node(m, "GlobalAveragePool", {"x"}, "p");
    if (op == "Squeeze") {
      auto* axes = add_node(m, "Squeeze", {"p"}, "y")->add_attribute();
      axes->set_name("axes");
      axes->set_type(onnx::AttributeProto::INTS);
      for (int64_t a : ints) axes->add_ints(a);
    } else {
      auto* shape = m.mutable_graph()->add_initializer();
      shape->set_name("shape");
      shape->set_data_type(onnx::TensorProto::INT64);
      shape->add_dims(int64_t(ints.size()));
      for (int64_t v : ints) shape->add_int64_data(v);
      add_node(m, "Reshape", {"p", "shape"}, "y");
    }
    return m;
  };
  for (const auto& [op, ints] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"Squeeze", {2, 3}}, {"Squeeze", {-1, -2}}, {"Reshape", {-1, 3}}, {"Reshape", {0, -1}}}) {
    const Model model = parse_model(onnx_to_model_file(head(op, ints).SerializeAsString(), "ok.onnx"), "ok.onnx");
    EXPECT_TRUE(std::holds_alternative<GlobalAvgPoolOp>(model.graph.node(model.graph.output()).op)) << op;
  }
  EXPECT_NE(import_error(head("Squeeze", {1, 2})).find("is supported only to squeeze size-1 axes"), std::string::npos);
  EXPECT_NE(import_error(head("Squeeze", {0})).find("is supported only to squeeze size-1 axes"), std::string::npos);
  EXPECT_NE(import_error(head("Reshape", {-1, 4})).find("reshapes the batch axis (to -1)"), std::string::npos);
  EXPECT_NE(import_error(head("Reshape", {-1, -1})).find("reshapes the batch axis (to -1)"), std::string::npos);
}

TEST(OnnxImport, NamesThatAreNotUtf8AreRefused) {
  for (const std::string& bad : {std::string("a\xff"), std::string("\xc0\xaf"), std::string("\xed\xa0\x80")}) {
    onnx::ModelProto m = make_model(13, {"", "3", "8", "8"});
    add_node(m, "Relu", {"x"}, bad);
    add_node(m, "GlobalAveragePool", {bad}, "y");
    EXPECT_NE(import_error(m).find("its output name is not valid UTF-8"), std::string::npos);
  }
  onnx::ModelProto ok = make_model(13, {"", "3", "8", "8"});
  add_node(ok, "Relu", {"x"}, "r\xc3\xa9lu");  // "relu" with an e-acute: valid
  add_node(ok, "GlobalAveragePool", {"r\xc3\xa9lu"}, "y");
  EXPECT_NO_THROW(onnx_to_model_file(ok.SerializeAsString(), "ok.onnx"));
}

#endif

// Written-out graphs are checked field by field (a model file is untrusted input).
TEST(GraphJson, MalformedGraphsNameTheProblem) {
  const std::string input = R"({"name":"in","op":"input","inputs":[],"params":{"sample_shape":[3,8,8]}})";
  auto graph = [&](const std::string& rest) { return R"({"nodes":[)" + input + rest + "]}"; };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{}", "not an object with a non-empty 'nodes' array"},
      {graph(R"(,{"name":"r","op":"gelu","inputs":["in"],"params":{}})"), "node 'r' has unknown op 'gelu'"},
      {graph(R"(,{"name":"r","op":"relu","inputs":["nope"],"params":{}})"),
       "reads \"nope\", which is not an earlier node"},
      {graph(R"(,{"name":"p","op":"pad","inputs":["in"],"params":{"before":[0,1,1],"after":[0,1],"value":0}})"),
       "'after' must be an array of 3 integers"},
      {graph(R"(,{"name":"p","op":"pad","inputs":["in"],"params":{"before":[0,1,1],"after":[0,1,1e30],"value":0}})"),
       "'after' must be an integer"},
      {graph(R"(,{"name":"s","op":"slice","inputs":["in"],"params":{"start":[0,0,0],"step":[1,1,1],"size":[3,9,8]}})"),
       "(slice): axis 2 start 0 step 1 size 9 does not fit input (1,3,8,8)"},
      {graph(R"(,{"name":"c","op":"clip","inputs":["in"],"params":{"min":"nan","max":1}})"),
       "'min' must be a number"},
      {graph(R"(,{"name":"in","op":"relu","inputs":["in"],"params":{}})"), "duplicate or empty node name 'in'"},
  };
  for (const auto& [text, want] : cases) {
    const std::string msg = error_of([&] { graph_from_json(text); });
    EXPECT_EQ(msg.rfind("metadata 'graph': ", 0), 0u) << msg;
    EXPECT_NE(msg.find(want), std::string::npos) << "got: " << msg << "\nwant: " << want;
  }
  // Infinite clip bounds travel as strings.
  const Graph g = graph_from_json(graph(R"(,{"name":"c","op":"clip","inputs":["in"],"params":{"min":0,"max":"inf"}})"));
  EXPECT_TRUE(std::isinf(std::get<ClipOp>(g.node(1).op).max));
  EXPECT_EQ(graph_to_json(graph_from_json(graph_to_json(g))), graph_to_json(g));
}

}  // namespace
}  // namespace veto
