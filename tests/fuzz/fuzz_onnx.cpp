// An ONNX protobuf through the importer (what `veto import-onnx` and `--model X.onnx` run):
// protobuf parsing, constant folding, lowering onto veto's ops, then the model file it makes
// through parse_model. An accepted import must load, with one class per output.
#include "runtime/io/safetensors.h"
#include "runtime/model.h"
#include "runtime/onnx_import.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_ok_or_error([&] {
    const SafetensorsFile file = onnx_to_model_file(fuzz::as_string(data, size), "fuzz.onnx");
    const Model model = parse_model(file, "fuzz.onnx");
    VETO_FUZZ_ASSERT(model.arch == "graph");
    VETO_FUZZ_ASSERT(static_cast<int64_t>(model.classes.size()) == model.graph.node(model.graph.output()).shape.numel());
  });
  return 0;
}
