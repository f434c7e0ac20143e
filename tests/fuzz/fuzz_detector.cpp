// A safetensors blob through the detector-file validation (parse_error_detector); a
// detector that loads then scores a few rows of features laid out the way `veto detect`
// lays them out for it (conductance at the layers its groups name, LCR only when it reads
// LCR), after check_detector_fits. Every score must be a probability.
#include <algorithm>
#include <vector>

#include "runtime/detection.h"
#include "runtime/io/safetensors.h"
#include "runtime/softmax_scores.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

namespace {

constexpr int64_t kRows = 3, kClasses = 4;

// Rows of features for the groups `d` reads; a single conductance layer gets the columns the
// first classifier has left after the other groups (so a consistent file gets scored).
FeatureSet features_for(const ErrorDetector& d) {
  FeatureSet f;
  f.metadata = d.provenance;
  f.classes = kClasses;
  f.has_lcr = d.reads("lcr");
  int64_t other = 0;
  for (const std::string& g : d.first_groups()) {
    if (g == "conductance") f.layers.push_back("conv");
    else if (g.rfind("conductance.", 0) == 0) f.layers.push_back(g.substr(12));
    else other += g == "softmax" ? kSoftmaxScoreCount : 1;
  }
  const int64_t channels =
      f.layers.size() == 1 ? std::clamp<int64_t>(d.first.inputs() - other, 1, 4096) : int64_t{4};
  for (size_t l = 0; l < f.layers.size(); ++l) {
    f.channels.push_back(channels);
    std::vector<float> v(static_cast<size_t>(kRows * channels));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 5) - 2.0f;
    f.conductance.push_back(v);
  }
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t k = 0; k < kClasses; ++k) f.logits.push_back(static_cast<float>((r + k) % 3));
    f.prediction.push_back(r % kClasses);
    f.label.push_back((r + 1) % kClasses);
    for (double s : softmax_scores(f.logits.data() + r * kClasses, kClasses)) f.softmax.push_back(static_cast<float>(s));
    if (f.has_lcr) {
      f.lcr.push_back(0.25f * static_cast<float>(r));
      f.lcr_changes.push_back(r);
    }
  }
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_ok_or_error([&] {
    const SafetensorsFile file = parse_safetensors(fuzz::as_string(data, size), "fuzz.safetensors");
    const ErrorDetector d = parse_error_detector(file);
    const FeatureSet f = features_for(d);
    check_detector_fits(d, f, "detector", "features");
    for (double s : d.score(f, {0, 1, 2})) VETO_FUZZ_ASSERT(s >= 0 && s <= 1);
  });
  return 0;
}
