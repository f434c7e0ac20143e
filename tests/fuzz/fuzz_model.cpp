// A safetensors blob through the strict model validation of load_model (parse_model):
// metadata (format, arch, preprocess JSON, classes JSON, arch options), graph building and
// the tensor checks. Accepted models must have one parameter view per file tensor.
#include "runtime/io/safetensors.h"
#include "runtime/model.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_ok_or_error([&] {
    const SafetensorsFile file = parse_safetensors(fuzz::as_string(data, size), "fuzz.safetensors");
    const Model model = parse_model(file, "fuzz.safetensors");
    VETO_FUZZ_ASSERT(model.params.views().size() == file.tensors.size());
    VETO_FUZZ_ASSERT(!model.classes.empty());
  });
  return 0;
}
