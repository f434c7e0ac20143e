// A safetensors blob through the features-file validation (parse_features, what `veto
// evaluate`, `train-detector` and a resumed `veto features` read). An accepted file must be
// consistent: every per-input array has one row per input of its width, predictions are
// classes, labels classes or -1.
#include "runtime/features.h"
#include "runtime/io/safetensors.h"
#include "runtime/softmax_scores.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_ok_or_error([&] {
    const SafetensorsFile file = parse_safetensors(fuzz::as_string(data, size), "fuzz.safetensors");
    bool complete = false;
    const FeatureSet f = parse_features(file, &complete);
    const auto n = static_cast<size_t>(f.count());
    VETO_FUZZ_ASSERT(f.label.size() == n);
    VETO_FUZZ_ASSERT(f.logits.size() == n * static_cast<size_t>(f.classes));
    VETO_FUZZ_ASSERT(f.softmax.size() == n * kSoftmaxScoreCount);
    VETO_FUZZ_ASSERT(f.conductance.size() == f.layers.size() && f.channels.size() == f.layers.size());
    for (size_t l = 0; l < f.layers.size(); ++l)
      VETO_FUZZ_ASSERT(f.conductance[l].size() == n * static_cast<size_t>(f.channels[l]));
    VETO_FUZZ_ASSERT(f.has_lcr ? f.lcr.size() == n && f.lcr_changes.size() == n : f.lcr.empty());
    for (size_t i = 0; i < n; ++i) {
      VETO_FUZZ_ASSERT(f.prediction[i] >= 0 && f.prediction[i] < f.classes);
      VETO_FUZZ_ASSERT(f.label[i] >= -1 && f.label[i] < f.classes);
    }
  });
  return 0;
}
