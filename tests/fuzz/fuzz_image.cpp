// decode_image (stb_image: PNG, JPEG, BMP, behind veto's own header checks), then
// preprocess_image with the presets the bundled architectures use:
//   "none" 32x32 (CIFAR): any other size must be a clean error;
//   "shorter_crop" bilinear 342 -> 299 (torchvision InceptionV3): small images upscale;
//   "stretch" nearest 299x299 (Keras load_img).
#include <algorithm>

#include "runtime/preprocess.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

namespace {

Preprocess preset(const std::string& resize, const std::string& interpolation, int64_t side, int64_t shorter) {
  Preprocess p;
  p.resize = resize;
  p.interpolation = interpolation;
  p.height = p.width = side;
  p.resize_shorter = shorter;
  p.mean = {0.485f, 0.456f, 0.406f};
  p.std = {0.229f, 0.224f, 0.225f};
  return p;
}

// "none" fails exactly when the size differs; "stretch" takes any size; "shorter_crop" any
// size whose resized longer side stays within the 32768-pixel limit.
bool should_succeed(const Image& image, const Preprocess& pre) {
  if (pre.resize == "none") return image.width == pre.width && image.height == pre.height;
  if (pre.resize == "stretch") return true;
  const int64_t shorter = std::min(image.width, image.height), longer = std::max(image.width, image.height);
  return static_cast<double>(pre.resize_shorter * longer) / static_cast<double>(shorter) < 32769.0;
}

}  // namespace

// decode_image accepts up to Pillow's 179-megapixel limit, and stb_image decodes even a
// truncated JPEG in full: a 1.5 KB file declaring 16384x10922 takes ~5 s natively but ~190 s
// with coverage + ASan, so such inputs would only stall the fuzzer. The target lowers the
// limit to one megapixel (the same check, refusing before any pixel memory exists); the
// full limit is unit-tested (tests/test_image.cpp, HugeDimensionsAreRefusedBeforeDecoding).
constexpr int64_t kMaxFuzzPixels = int64_t{1} << 20;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Image image;
  if (!fuzz::expect_ok_or_error([&] { image = decode_image(fuzz::as_string(data, size), "fuzz.img", kMaxFuzzPixels); }))
    return 0;
  VETO_FUZZ_ASSERT(image.width > 0 && image.height > 0);
  VETO_FUZZ_ASSERT(image.rgb.size() == static_cast<size_t>(image.width * image.height * 3));

  static const Preprocess presets[] = {preset("none", "bilinear", 32, 0), preset("shorter_crop", "bilinear", 299, 342),
                                       preset("stretch", "nearest", 299, 0)};
  for (const Preprocess& pre : presets) {
    Tensor t;
    const bool ok = fuzz::expect_ok_or_error([&] { t = preprocess_image(image, pre); });
    VETO_FUZZ_ASSERT(ok == should_succeed(image, pre));
    if (ok) VETO_FUZZ_ASSERT(t.shape() == Shape({3, pre.height, pre.width}));
  }
  return 0;
}
