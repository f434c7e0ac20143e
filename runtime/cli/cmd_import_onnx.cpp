// veto import-onnx: an ONNX classifier as a veto model file (every command also takes the
// .onnx directly; importing once saves the parse and records the preprocessing and classes).
#include <iostream>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/model.h"
#include "runtime/onnx_import.h"

namespace veto::cli {

int cmd_import_onnx(const std::vector<std::string>& words) {
  std::vector<std::string> files, options;
  for (const std::string& w : words) (options.empty() && w.rfind("--", 0) != 0 ? files : options).push_back(w);
  std::string presets;
  for (const std::string& p : onnx_preprocess_presets()) presets += (presets.empty() ? "" : ", ") + p;
  Args args("import-onnx",
            {{"preprocess", OptionSpec::Value, "PRESET|JSON",
              "how images become inputs: a preset (" + presets +
                  ") or a JSON object as in model files; default: the model's metadata_props 'veto.preprocess', "
                  "else cifar for 32x32 inputs and torchvision otherwise"},
             {"classes", OptionSpec::Value, "FILE",
              "class names, one per line (default: metadata_props 'veto.classes', else 0, 1, ...)"}});
  if (!args.parse(options)) {
    std::cout << args.help("MODEL.onnx OUT.safetensors [--preprocess PRESET|JSON] [--classes FILE]",
                           "Lowers an ONNX CNN classifier (opsets 6-17) onto veto's ops and writes a veto model\n"
                           "file (arch 'graph'). Layer names are the ONNX node output names (veto info lists them).");
    return 0;
  }
  VETO_CHECK(files.size() == 2, "import-onnx takes MODEL.onnx OUT.safetensors, got ", files.size(), " file name",
             files.size() == 1 ? "" : "s");
  VETO_CHECK(files[0] != files[1], "import-onnx: the output would overwrite the ONNX model");
  OnnxImportOptions o;
  o.preprocess = args.get("preprocess");
  o.classes_file = args.get("classes");
  const SafetensorsFile file = onnx_to_model_file(read_file(files[0], size_t{2} << 30), files[0], o);
  const Model model = parse_model(file, files[0]);  // what loading OUT will see
  write_safetensors(files[1], file);
  std::cout << "wrote " << files[1] << ": " << model.graph.size() << " nodes, " << model.params.size()
            << " parameters, " << model.classes.size() << " classes, " << model.graph.blocks().size()
            << " blocks, input " << model.graph.node(0).shape.str() << ", fingerprint " << model_fingerprint(model)
            << "\n";
  return 0;
}

}  // namespace veto::cli
