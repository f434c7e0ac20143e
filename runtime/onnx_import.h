// Importing a CNN classifier from ONNX: the graph is lowered onto veto's ops (Conv with its
// BatchNormalization folded by the executor as for native models, pools, Concat, Add, Gemm,
// ...), constant subgraphs (the shape arithmetic exporters emit around Pad and Reshape) are
// evaluated at import time, and the result is a veto model file with arch "graph" (the graph
// written out in its metadata; see runtime/graph_json.h). Parsing uses the official ONNX
// protobuf classes (libonnx). See README §"Models from ONNX" for the supported ops.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/io/safetensors.h"
#include "runtime/model.h"

namespace veto {

struct OnnxImportOptions {
  // "" (the model's own metadata_props "veto.preprocess", else "cifar" for 32x32 inputs and
  // "torchvision" otherwise), a preset name (see onnx_preprocess_presets()), or a JSON object
  // in the model files' "preprocess" format.
  std::string preprocess;
  // A text file with one class name per line; "" = metadata_props "veto.classes" (a JSON
  // array) when the model has it, else "0", "1", ...
  std::string classes_file;
};

// The veto model file for an ONNX model's bytes; `source` names it in errors. Throws
// veto::Error with one line naming the problem: not ONNX, an opset outside [6, 17], every
// unsupported node with its op type, a dynamic dimension other than the batch, ...
SafetensorsFile onnx_to_model_file(const std::string& bytes, const std::string& source,
                                   const OnnxImportOptions& options = {});
// Reads and imports `path` (what `--model MODEL.onnx` does).
Model import_onnx(const std::string& path, const OnnxImportOptions& options = {});

// For conformance runs (tests/onnx_conformance.cpp): the graph and weights of any model
// the importer can lower, without the image-classifier checks (any channel count; a final
// Softmax kept). Graph inputs after the first are bound to `constant_inputs` (name ->
// serialized TensorProto: the test case's input_1.pb, ...).
Model import_onnx_graph(const std::string& bytes, const std::string& source,
                        const std::map<std::string, std::string>& constant_inputs);

// A serialized TensorProto (a test case's input_*.pb / output_*.pb) as floats.
struct OnnxTensor {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<float> values;
  bool is_float = true;
};
OnnxTensor read_onnx_tensor(const std::string& bytes, const std::string& source);

// Whether this build can read ONNX (it links libonnx; CMake -DVETO_ONNX).
bool onnx_available();
// The preset names --preprocess accepts.
std::vector<std::string> onnx_preprocess_presets();
// The ONNX op types the importer lowers.
std::vector<std::string> onnx_supported_ops();

}  // namespace veto
