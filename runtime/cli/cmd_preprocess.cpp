// veto preprocess: what the model sees, as a .npy tensor (to compare with other frameworks'
// preprocessing, or to feed `--input X.npy` later without decoding again).
#include <iostream>

#include "runtime/cli/common.h"
#include "runtime/io/npy.h"

namespace veto::cli {

int cmd_preprocess(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs{{"model", OptionSpec::Value, "M", "model file or bundled name (its preprocessing)"}};
  for (auto& s : input_options()) specs.push_back(s);
  specs.push_back({"out", OptionSpec::Value, "OUT.npy", "where to write the (N,C,H,W) float32 tensor"});
  Args args("preprocess", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--model M (--data CIFAR.bin | --input FILE...) --out OUT.npy",
                           "Decodes and preprocesses the inputs exactly as the other commands do, and writes\n"
                           "the result as a float32 .npy of shape (N,C,H,W).");
    return 0;
  }
  const std::string out = args.require("out");
  const Model model = open_model(args);
  const auto data = open_inputs(args, model);
  const Preprocess& p = model.preprocess;
  Tensor t(Shape{data->size(), p.channels, p.height, p.width});
  data->load_batch(0, data->size(), t.data());
  write_npy(out, t);
  std::cout << "wrote " << out << " " << t.shape().str() << "\n";
  return 0;
}

}  // namespace veto::cli
