#include "runtime/conductance_maps.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto {

void write_conductance_png(const std::string& path, const float* input, const Preprocess& pre, const float* map,
                           int64_t channels, int64_t map_h, int64_t map_w, const float* channel_values, int top) {
  const int64_t in_h = pre.height, in_w = pre.width, c_in = pre.channels, plane = in_h * in_w;
  // Small inputs (CIFAR's 32x32) are enlarged so the picture can be read.
  const int64_t scale = std::max<int64_t>(1, 160 / std::max<int64_t>(std::max(in_h, in_w), 1));
  const int64_t h = in_h * scale, w = in_w * scale;
  const int64_t shown = std::min<int64_t>(top, channels);
  const int64_t strip_w = w * (1 + shown);
  VETO_CHECK(h > 0 && w > 0 && map_h > 0 && map_w > 0 && strip_w <= 16384, path,
             ": cannot draw maps of this size");
  std::vector<uint8_t> rgb(static_cast<size_t>(h * strip_w * 3), 0);
  // The input as pixels again: (x * std + mean) * divisor.
  std::vector<float> pixel(static_cast<size_t>(plane * 3));
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t c = std::min(k, c_in - 1);
    for (int64_t i = 0; i < plane; ++i) {
      const float v = (input[c * plane + i] * pre.std[static_cast<size_t>(c)] + pre.mean[static_cast<size_t>(c)]) *
                      pre.divisor;
      pixel[static_cast<size_t>(i * 3 + k)] = std::clamp(v, 0.0f, 255.0f);
    }
  }
  auto put = [&](int64_t y, int64_t x, float r, float g, float b) {
    uint8_t* p = &rgb[static_cast<size_t>((y * strip_w + x) * 3)];
    p[0] = static_cast<uint8_t>(std::lround(std::clamp(r, 0.0f, 255.0f)));
    p[1] = static_cast<uint8_t>(std::lround(std::clamp(g, 0.0f, 255.0f)));
    p[2] = static_cast<uint8_t>(std::lround(std::clamp(b, 0.0f, 255.0f)));
  };
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const float* p = &pixel[static_cast<size_t>((y / scale * in_w + x / scale) * 3)];
      put(y, x, p[0], p[1], p[2]);
    }

  std::vector<int64_t> order(static_cast<size_t>(channels));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + shown, order.end(), [&](int64_t a, int64_t b) {
    return channel_values[a] > channel_values[b] || (channel_values[a] == channel_values[b] && a < b);
  });
  for (int64_t s = 0; s < shown; ++s) {
    const float* m = map + order[static_cast<size_t>(s)] * map_h * map_w;
    float peak = 0;
    for (int64_t i = 0; i < map_h * map_w; ++i) peak = std::max(peak, std::fabs(m[i]));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const float v = m[(y * map_h / h) * map_w + x * map_w / w];
        const float a = peak > 0 ? std::fabs(v) / peak : 0.0f;
        const float* p = &pixel[static_cast<size_t>((y / scale * in_w + x / scale) * 3)];
        const float gray = 0.5f * (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]);
        const float tint_r = v > 0 ? 255.0f : 0.0f, tint_b = v < 0 ? 255.0f : 0.0f;
        put(y, w * (1 + s) + x, gray + a * (tint_r - gray), gray * (1 - a), gray + a * (tint_b - gray));
      }
  }
  std::string png;
  auto sink = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  VETO_CHECK(stbi_write_png_to_func(sink, &png, static_cast<int>(strip_w), static_cast<int>(h), 3, rgb.data(),
                                    static_cast<int>(strip_w * 3)) != 0,
             path, ": PNG encoding failed");
  write_file_atomic(path, png);
}

}  // namespace veto
