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

}  // namespace veto
