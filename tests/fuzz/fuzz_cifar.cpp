// parse_cifar on arbitrary bytes, whole and with a limit of 1, then the CIFAR
// normalization every record goes through before inference.
#include "runtime/io/cifar.h"
#include "runtime/preprocess.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = fuzz::as_string(data, size);
  for (const int64_t limit : {int64_t{-1}, int64_t{1}}) {
    ImageSet set;
    if (!fuzz::expect_ok_or_error([&] { set = parse_cifar(bytes, "fuzz.bin", limit); })) continue;
    const size_t image_bytes = static_cast<size_t>(set.channels * set.height * set.width);
    VETO_FUZZ_ASSERT(set.pixels.size() == static_cast<size_t>(set.count) * image_bytes);
    VETO_FUZZ_ASSERT(set.labels.size() == static_cast<size_t>(set.count));
    VETO_FUZZ_ASSERT(set.names.size() == static_cast<size_t>(set.count));
    Preprocess pre;  // CIFAR ResNet normalization
    pre.mean = {0.4914f, 0.4822f, 0.4465f};
    pre.std = {0.2470f, 0.2435f, 0.2616f};
    std::vector<float> out(image_bytes);
    for (int64_t i = 0; i < set.count; ++i) {
      VETO_FUZZ_ASSERT(set.labels[static_cast<size_t>(i)] >= 0 && set.labels[static_cast<size_t>(i)] <= 9);
      normalize_chw(set.pixels.data() + static_cast<size_t>(i) * image_bytes, set.channels, set.height, set.width, pre,
                    out.data());
    }
  }
  return 0;
}
