// A safetensors blob through the mutant-file validation of load_mutant_set
// (parse_mutant_set), then every accepted mutant resolved against a tiny model with one
// 3x3 convolution named "conv" (4 filters of 3x3x3), as `veto lcr` does after the
// fingerprint check, and applied and reverted. Accepted files must hold one mutant per
// entry of 'draw', and a revert must restore every weight bit for bit.
#include <cstring>
#include <vector>

#include "runtime/io/safetensors.h"
#include "runtime/mutation.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

namespace {

Model tiny_model() {
  Model m;
  m.arch = "fuzz_tiny";
  const int x = m.graph.add("input", InputOp{Shape{3, 4, 4}});
  Conv2dOp conv;
  conv.in_channels = 3;
  conv.out_channels = 4;
  conv.kernel_h = conv.kernel_w = 3;
  conv.pad_top = conv.pad_left = conv.pad_bottom = conv.pad_right = 1;
  const int c = m.graph.add("conv", conv, {x});
  const int r = m.graph.add("relu", ReluOp{}, {c});
  const int p = m.graph.add("pool", GlobalAvgPoolOp{}, {r});
  m.graph.add("fc", DenseOp{4, 2, true}, {p});
  m.params = ParamArena(m.graph.param_specs());
  for (int64_t i = 0; i < m.params.size(); ++i) m.params.data()[i] = static_cast<float>(i % 7) - 3.0f;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Model model = tiny_model();
  fuzz::expect_ok_or_error([&] {
    const SafetensorsFile file = parse_safetensors(fuzz::as_string(data, size), "fuzz.safetensors");
    const MutantSet set = parse_mutant_set(file);
    VETO_FUZZ_ASSERT(static_cast<int64_t>(set.mutants.size()) == file.get("draw").shape[0]);
    const std::vector<float> before(model.params.data(), model.params.data() + model.params.size());
    for (const Mutant& m : set.mutants) {
      const WeightDelta delta = resolve_mutant(model, m);
      { const ScopedDelta applied(model.params, delta); }
      VETO_FUZZ_ASSERT(std::memcmp(before.data(), model.params.data(), before.size() * sizeof(float)) == 0);
    }
  });
  return 0;
}
