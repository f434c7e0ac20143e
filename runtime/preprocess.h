// Turning images into network inputs, as the model's metadata says.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace veto {

// How an 8-bit RGB image becomes the network input (C,H,W) float tensor:
// resize (see `resize`), then x = (pixel / divisor - mean[c]) / std[c].
struct Preprocess {
  int64_t channels = 3, height = 32, width = 32;
  // "none": the image must already be height x width.
  // "stretch": resize to height x width ignoring the aspect ratio (Keras load_img).
  // "shorter_crop": resize the shorter side to resize_shorter, center-crop height x width.
  std::string resize = "none";
  std::string interpolation = "bilinear";  // or "nearest"
  int64_t resize_shorter = 0;
  float divisor = 255.0f;
  std::vector<float> mean{0.0f, 0.0f, 0.0f};
  std::vector<float> std{1.0f, 1.0f, 1.0f};
};

// The most pixels a decoded image may have: Pillow's decompression-bomb limit (2 *
// MAX_IMAGE_PIXELS). A 32768 x 32768 header would otherwise make us allocate 3 GB on the
// say-so of a few bytes.
constexpr int64_t kMaxImagePixels = 2 * 89'478'485;

// An 8-bit RGB image as decoded from a file.
struct Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, HWC
  std::string source;        // file path, used to prefix error messages (may be empty)
};

// Decodes PNG, JPEG or BMP with stb_image. Gray and gray+alpha become 3 equal channels,
// RGBA drops alpha, 16-bit samples keep their high byte. No color management and no EXIF
// rotation (torchvision's default loader does neither). JPEG pixels may differ from
// libjpeg-turbo's by a level or two (different IDCT/upsampling). Errors name the path:
// "<path>: cannot decode image: <reason>", or the dimensions when a side exceeds 32768
// pixels or the image exceeds Pillow's decompression-bomb limit (checked before decoding).
Image load_image(const std::string& path);
// Same, from bytes in memory; `source` names them in error messages. `max_pixels` can lower
// the pixel limit (never raise it) for callers that bound memory and time more tightly,
// such as the fuzzer (a truncated JPEG header may claim the full limit).
Image decode_image(const std::string& bytes, const std::string& source, int64_t max_pixels = kMaxImagePixels);

// Resizes like Pillow's Image.resize(size, NEAREST or BILINEAR) on an RGB image, so
// torchvision/Keras preprocessing built on Pillow is reproduced pixel for pixel (pass
// order of Pillow <= 12). `interpolation` is "nearest" or "bilinear".
Image resize_image(const Image& image, int64_t width, int64_t height, const std::string& interpolation);
// Crops width x height from the center with torchvision's CenterCrop rounding.
Image center_crop(const Image& image, int64_t width, int64_t height);

// Resizes `image` as `pre.resize` says, then normalizes it into a (C,H,W) float tensor:
// x = (pixel / divisor - mean[c]) / std[c], computed in float like torchvision's
// ToTensor + Normalize.
Tensor preprocess_image(const Image& image, const Preprocess& pre);

// The same normalization for one CHW uint8 image that already has the model's size (a
// CIFAR record). Writes channels*height*width floats to `out`; a size that differs from
// `pre` is an error.
void normalize_chw(const uint8_t* chw, int64_t channels, int64_t height, int64_t width, const Preprocess& pre,
                   float* out);

}  // namespace veto
