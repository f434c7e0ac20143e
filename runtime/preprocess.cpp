#include "runtime/preprocess.h"

#include <stb_image.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto {
namespace {

constexpr int64_t kMaxSide = 32768;
// stb_image takes the buffer length as int.
constexpr size_t kMaxImageFileBytes = size_t{1} << 30;

std::string label(const Image& image) { return image.source.empty() ? std::string("image") : image.source; }

void check_image(const Image& image) {
  VETO_CHECK(image.width > 0 && image.height > 0 && image.width <= kMaxSide && image.height <= kMaxSide, label(image),
             ": bad image size ", image.width, "x", image.height);
  VETO_CHECK(image.rgb.size() == static_cast<size_t>(image.width * image.height * 3), label(image), ": ",
             image.rgb.size(), " bytes of pixels for a ", image.width, "x", image.height, " RGB image");
}

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

// ---- Pillow's resampling (libImaging/Resample.c and Geometry.c), RGB 8-bit only ----------

// Pillow rounds filter weights to fixed point with this many fraction bits (8-bit images).
constexpr int kPrecisionBits = 32 - 8 - 2;

// For each output index: the first input index, how many inputs, and their weights.
struct AxisWeights {
  int taps = 0;                   // weights stored per output index
  std::vector<int> first, count;  // per output index
  std::vector<int64_t> weights;   // out_size * taps, fixed point
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// precompute_coeffs() with Pillow's BILINEAR filter (a triangle of support 1). When
// shrinking, the filter is widened by the scale factor, which is what makes Pillow's
// bilinear antialiased. Every step mirrors Pillow's double arithmetic and truncations.
AxisWeights bilinear_weights(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  AxisWeights w;
  w.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(static_cast<size_t>(out_size));
  w.count.resize(static_cast<size_t>(out_size));
  w.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(w.taps), 0);
  std::vector<double> k(static_cast<size_t>(w.taps));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double inv_scale = 1.0 / filter_scale;
    // Pillow "rounds" with (int)(v + 0.5), i.e. truncation toward zero.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[static_cast<size_t>(x)] = triangle((x + xmin - center + 0.5) * inv_scale);
      total += k[static_cast<size_t>(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = k[static_cast<size_t>(x)];
      if (total != 0.0) v /= total;
      // normalize_coeffs_8bpc: round half away from zero into fixed point.
      w.weights[static_cast<size_t>(xx) * static_cast<size_t>(w.taps) + static_cast<size_t>(x)] =
          static_cast<int>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    w.first[static_cast<size_t>(xx)] = xmin;
    w.count[static_cast<size_t>(xx)] = xmax;
  }
  return w;
}

uint8_t clip8(int64_t v) {
  if (v >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// The two separable passes (ImagingResampleHorizontal_8bpc / Vertical_8bpc): a weighted
// sum in fixed point per channel, rounded and clipped to 8 bits.
Image bilinear_horizontal(const Image& in, int out_width) {
  const AxisWeights w = bilinear_weights(static_cast<int>(in.width), out_width);
  Image out;
  out.width = out_width;
  out.height = in.height;
  out.source = in.source;
  out.rgb.resize(static_cast<size_t>(out.width * out.height * 3));
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = in.rgb.data() + y * in.width * 3;
    uint8_t* dst = out.rgb.data() + y * out.width * 3;
    for (int xx = 0; xx < out_width; ++xx) {
      const int64_t* k = w.weights.data() + static_cast<size_t>(xx) * static_cast<size_t>(w.taps);
      const uint8_t* src = row + static_cast<int64_t>(w.first[static_cast<size_t>(xx)]) * 3;
      for (int c = 0; c < 3; ++c) {
        int64_t sum = int64_t{1} << (kPrecisionBits - 1);  // rounds the final shift
        for (int x = 0; x < w.count[static_cast<size_t>(xx)]; ++x) sum += src[x * 3 + c] * k[x];
        dst[xx * 3 + c] = clip8(sum);
      }
    }
  }
  return out;
}

Image bilinear_vertical(const Image& in, int out_height) {
  const AxisWeights w = bilinear_weights(static_cast<int>(in.height), out_height);
  Image out;
  out.width = in.width;
  out.height = out_height;
  out.source = in.source;
  out.rgb.resize(static_cast<size_t>(out.width * out.height * 3));
  const int64_t stride = in.width * 3;
  for (int yy = 0; yy < out_height; ++yy) {
    const int64_t* k = w.weights.data() + static_cast<size_t>(yy) * static_cast<size_t>(w.taps);
    const uint8_t* src = in.rgb.data() + w.first[static_cast<size_t>(yy)] * stride;
    uint8_t* dst = out.rgb.data() + yy * stride;
    for (int64_t i = 0; i < stride; ++i) {
      int64_t sum = int64_t{1} << (kPrecisionBits - 1);
      for (int y = 0; y < w.count[static_cast<size_t>(yy)]; ++y) sum += src[y * stride + i] * k[y];
      dst[i] = clip8(sum);
    }
  }
  return out;
}

// Pillow's NEAREST resize is an affine scale (ImagingScaleAffine): source coordinate
// starts at scale/2 and is advanced by adding `scale`, then truncated. The accumulation
// (rather than (i + 0.5) * scale) is kept because it decides rare ties the same way.
// An index that lands outside the image stays black, as Pillow's fill does.
std::vector<int> nearest_indices(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  std::vector<int> index(static_cast<size_t>(out_size));
  double pos = scale * 0.5;
  for (int64_t i = 0; i < out_size; ++i) {
    const int v = pos < 0.0 ? -1 : static_cast<int>(pos);
    index[static_cast<size_t>(i)] = v < in_size ? v : -1;
    pos += scale;
  }
  return index;
}

Image nearest_resize(const Image& in, int64_t width, int64_t height) {
  const std::vector<int> xs = nearest_indices(in.width, width), ys = nearest_indices(in.height, height);
  Image out;
  out.width = width;
  out.height = height;
  out.source = in.source;
  out.rgb.assign(static_cast<size_t>(width * height * 3), 0);
  for (int64_t y = 0; y < height; ++y) {
    const int sy = ys[static_cast<size_t>(y)];
    if (sy < 0) continue;
    for (int64_t x = 0; x < width; ++x) {
      const int sx = xs[static_cast<size_t>(x)];
      if (sx < 0) continue;
      const uint8_t* src = in.rgb.data() + (sy * in.width + sx) * 3;
      std::copy(src, src + 3, out.rgb.data() + (y * width + x) * 3);
    }
  }
  return out;
}

// Python's round() on a multiple of 0.5: half to even (torchvision's CenterCrop uses it).
int64_t half_of_rounded_to_even(int64_t twice) {
  const int64_t down = twice / 2;
  if (twice % 2 == 0) return down;
  return down % 2 == 0 ? down : down + 1;
}

void check_preprocess(const Preprocess& pre, const std::string& where) {
  VETO_CHECK(pre.channels > 0 && pre.height > 0 && pre.width > 0, where, ": bad preprocess input size ", pre.channels,
             "x", pre.height, "x", pre.width);
  VETO_CHECK(
      pre.mean.size() == static_cast<size_t>(pre.channels) && pre.std.size() == static_cast<size_t>(pre.channels),
      where, ": preprocess mean/std have ", pre.mean.size(), "/", pre.std.size(), " values for ", pre.channels,
      " channels");
  VETO_CHECK(pre.divisor != 0.0f, where, ": preprocess divisor is 0");
  for (float s : pre.std) VETO_CHECK(s != 0.0f, where, ": preprocess std has a 0");
}

// Debian 12's stb_image (2.27) trusts a JPEG's Huffman tables: a table (DHT) of more than
// 256 symbols writes past its fixed-size arrays, and a scan (SOS) that selects a table no
// DHT defined decodes with uninitialized ones, whose codes index far out of bounds (both
// fixed upstream in 2.28). Walk the JPEG's marker segments the way stb_image does and
// report such a file as corrupt before stb_image sees it. Returns an empty string when the
// file is fine or not a JPEG.
std::string jpeg_huffman_table_problem(const uint8_t* p, size_t n) {
  // stb_image takes a file as JPEG when it starts with 0xFF, any number of 0xFF fill
  // bytes, then the SOI code 0xD8.
  size_t i = 0;
  if (n == 0 || p[0] != 0xFF) return "";
  while (i < n && p[i] == 0xFF) ++i;
  if (i == n || p[i] != 0xD8) return "";
  ++i;
  // stb_image reads zeros past the end of the buffer; so do we.
  auto byte = [&](size_t k) -> uint32_t { return k < n ? p[k] : 0; };
  bool defined[2][4] = {};  // [class: DC, AC][id]: tables some DHT before has defined
  bool progressive = false;
  while (i + 1 < n) {
    // Entropy-coded data and padding: a marker is 0xFF followed by a byte that is not a
    // fill 0xFF, a stuffed 0x00 or a restart marker (none of which carry a length).
    if (p[i] != 0xFF) {
      ++i;
      continue;
    }
    const uint8_t marker = p[i + 1];
    if (marker == 0xFF) {
      ++i;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;
      continue;
    }
    if (marker == 0xD9) break;  // end of image
    const size_t length = (byte(i + 2) << 8) | byte(i + 3);
    if (marker == 0xC4) {
      // One or more tables: class/id byte, 16 code-length counts, then the symbols.
      int64_t left = static_cast<int64_t>(length) - 2;
      size_t q = i + 4;
      while (left > 0 && q < n) {
        uint32_t symbols = 0;
        for (size_t k = 1; k <= 16; ++k) symbols += byte(q + k);
        if (symbols > 256) return "JPEG Huffman table with " + std::to_string(symbols) + " symbols (at most 256)";
        const uint32_t table_class = byte(q) >> 4, id = byte(q) & 15;
        if (table_class <= 1 && id <= 3) defined[table_class][id] = true;  // stb_image refuses others
        q += 17 + symbols;
        left -= 17 + static_cast<int64_t>(symbols);
      }
    }
    if (marker == 0xC2) progressive = true;
    if (marker == 0xDA) {
      // Per component: selector byte DC id << 4 | AC id; then Ss, Se, Ah << 4 | Al. A
      // baseline scan decodes with both tables; a progressive one with the DC table when
      // it is a first DC scan (Ss = 0, Ah = 0), with the AC table when Ss > 0.
      const uint32_t components = byte(i + 4);
      const uint32_t ss = byte(i + 5 + 2 * components), ah = byte(i + 7 + 2 * components) >> 4;
      const bool dc = !progressive || (ss == 0 && ah == 0), ac = !progressive || ss > 0;
      for (uint32_t c = 0; c < components; ++c) {
        const uint32_t selector = byte(i + 6 + 2 * c), dc_id = selector >> 4, ac_id = selector & 15;
        if (dc && dc_id <= 3 && !defined[0][dc_id])
          return "JPEG scan uses Huffman table DC" + std::to_string(dc_id) + ", which no DHT defines";
        if (ac && ac_id <= 3 && !defined[1][ac_id])
          return "JPEG scan uses Huffman table AC" + std::to_string(ac_id) + ", which no DHT defines";
      }
    }
    i += 2 + length;
  }
  return "";
}

// stb_image 2.27 grows its buffer for a PNG's image data (IDAT) to the length a chunk
// claims before it reads the chunk: a 100-byte file claiming 1 GiB makes it allocate 2 GiB
// and then fail. Every chunk up to IEND must lie within the file (stb_image refuses such
// files anyway, only after that allocation). Returns an empty string when the file is fine
// or not a PNG.
std::string png_chunk_problem(const uint8_t* p, size_t n) {
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n < 8 || std::memcmp(p, signature, 8) != 0) return "";
  for (size_t i = 8; i + 8 <= n;) {
    const size_t length = (size_t{p[i]} << 24) | (size_t{p[i + 1]} << 16) | (size_t{p[i + 2]} << 8) | p[i + 3];
    const std::string type(reinterpret_cast<const char*>(p + i + 4), 4);
    if (length > n - (i + 8))
      return "PNG chunk of " + std::to_string(length) + " bytes at offset " + std::to_string(i) +
             " runs past the end of the " + std::to_string(n) + "-byte file";
    if (type == "IEND") break;
    i += 12 + length;  // length, type, data, CRC
  }
  return "";
}

}  // namespace

Image decode_image(const std::string& bytes, const std::string& source, int64_t max_pixels) {
  max_pixels = std::min(max_pixels, kMaxImagePixels);
  if (bytes.size() > static_cast<size_t>(INT_MAX)) fail(source, ": image file too large (", bytes.size(), " bytes)");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  std::string problem = jpeg_huffman_table_problem(data, bytes.size());
  if (problem.empty()) problem = png_chunk_problem(data, bytes.size());
  if (!problem.empty()) fail(source, ": cannot decode image: ", problem);
  // Read the header first so absurd dimensions are refused before any pixel memory exists.
  int width = 0, height = 0, components = 0;
  if (!stbi_info_from_memory(data, length, &width, &height, &components))
    fail(source, ": cannot decode image: ", stb_reason());
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
    fail(source, ": image is ", width, "x", height, " pixels; at most ", kMaxSide, " per side is supported");
  if (static_cast<int64_t>(width) * height > max_pixels)
    fail(source, ": image is ", width, "x", height, " pixels, more than the ", max_pixels, "-pixel limit");

  int w = 0, h = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &w, &h, &components, 3),
                                                   stbi_image_free);
  if (!pixels) fail(source, ": cannot decode image: ", stb_reason());
  if (w != width || h != height)
    fail(source, ": cannot decode image: header says ", width, "x", height, " but decoded ", w, "x", h);
  Image image;
  image.width = w;
  image.height = h;
  image.source = source;
  image.rgb.assign(pixels.get(), pixels.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  return image;
}

Image load_image(const std::string& path) { return decode_image(read_file(path, kMaxImageFileBytes), path); }

Image resize_image(const Image& image, int64_t width, int64_t height, const std::string& interpolation) {
  check_image(image);
  VETO_CHECK(width > 0 && height > 0 && width <= kMaxSide && height <= kMaxSide, label(image), ": bad resize target ",
             width, "x", height);
  if (interpolation == "nearest") {
    // Pillow returns a copy when the size does not change.
    if (width == image.width && height == image.height) return image;
    return nearest_resize(image, width, height);
  }
  if (interpolation == "bilinear") {
    // Pillow skips the pass of an axis whose size does not change; horizontal goes first,
    // and the intermediate image is rounded to 8 bits. (Pillow >= 13 goes vertical first
    // when the height shrinks by more than twice the width's reduction, which can move a
    // pixel by one level; we follow Pillow <= 12, the version torchvision references here
    // were made with.)
    Image out = image;
    if (width != image.width) out = bilinear_horizontal(out, static_cast<int>(width));
    if (height != image.height) out = bilinear_vertical(out, static_cast<int>(height));
    return out;
  }
  fail(label(image), ": unknown interpolation \"", interpolation, "\" (expected \"nearest\" or \"bilinear\")");
}

Image center_crop(const Image& image, int64_t width, int64_t height) {
  check_image(image);
  // torchvision pads a too-small image with zeros first; no model here expects that, so a
  // crop larger than the image is reported instead.
  VETO_CHECK(width > 0 && height > 0 && width <= image.width && height <= image.height, label(image), ": cannot crop ",
             width, "x", height, " from a ", image.width, "x", image.height, " image");
  const int64_t top = half_of_rounded_to_even(image.height - height);
  const int64_t left = half_of_rounded_to_even(image.width - width);
  Image out;
  out.width = width;
  out.height = height;
  out.source = image.source;
  out.rgb.resize(static_cast<size_t>(width * height * 3));
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* src = image.rgb.data() + ((top + y) * image.width + left) * 3;
    std::copy(src, src + width * 3, out.rgb.data() + y * width * 3);
  }
  return out;
}

Tensor preprocess_image(const Image& image, const Preprocess& pre) {
  check_image(image);
  check_preprocess(pre, label(image));
  VETO_CHECK(pre.channels == 3, label(image), ": preprocess expects ", pre.channels,
             " channels but images are decoded as RGB (3)");
  Image sized;
  if (pre.resize == "none") {
    VETO_CHECK(image.width == pre.width && image.height == pre.height, label(image), ": image is ", image.width, "x",
               image.height, " but the model input is ", pre.width, "x", pre.height,
               " (width x height) and preprocess resize is \"none\"");
    sized = image;
  } else if (pre.resize == "stretch") {
    sized = resize_image(image, pre.width, pre.height, pre.interpolation);
  } else if (pre.resize == "shorter_crop") {
    VETO_CHECK(pre.resize_shorter > 0, label(image), ": preprocess resize \"shorter_crop\" needs resize_shorter > 0");
    // Also bounds resize_shorter * longer below (a model file's value: it would overflow).
    VETO_CHECK(pre.resize_shorter <= kMaxSide, label(image), ": preprocess resize_shorter ", pre.resize_shorter,
               " exceeds the ", kMaxSide, "-pixel limit");
    // torchvision Resize(int): the shorter side becomes resize_shorter and the longer one
    // int(resize_shorter * long / short), computed in double and truncated like Python.
    const bool portrait = image.width <= image.height;
    const int64_t shorter = portrait ? image.width : image.height;
    const int64_t longer = portrait ? image.height : image.width;
    const auto new_long =
        static_cast<int64_t>(static_cast<double>(pre.resize_shorter * longer) / static_cast<double>(shorter));
    const int64_t new_width = portrait ? pre.resize_shorter : new_long;
    const int64_t new_height = portrait ? new_long : pre.resize_shorter;
    sized = center_crop(resize_image(image, new_width, new_height, pre.interpolation), pre.width, pre.height);
  } else {
    fail(label(image), ": unknown preprocess resize \"", pre.resize,
         "\" (expected \"none\", \"stretch\" or \"shorter_crop\")");
  }

  // HWC -> CHW, then the same normalization as a CIFAR record.
  const int64_t plane = pre.height * pre.width;
  std::vector<uint8_t> chw(static_cast<size_t>(3 * plane));
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) chw[static_cast<size_t>(c * plane + i)] = sized.rgb[static_cast<size_t>(i * 3 + c)];
  Tensor out(Shape{3, pre.height, pre.width});
  normalize_chw(chw.data(), 3, pre.height, pre.width, pre, out.data());
  return out;
}

void normalize_chw(const uint8_t* chw, int64_t channels, int64_t height, int64_t width, const Preprocess& pre,
                   float* out) {
  check_preprocess(pre, "normalize");
  VETO_CHECK(channels == pre.channels && height == pre.height && width == pre.width, "image of ", channels, "x", height,
             "x", width, " (CxHxW) does not match the model input ", pre.channels, "x", pre.height, "x", pre.width);
  const int64_t plane = height * width;
  for (int64_t c = 0; c < channels; ++c) {
    const float mean = pre.mean[static_cast<size_t>(c)], std = pre.std[static_cast<size_t>(c)];
    const uint8_t* src = chw + c * plane;
    float* dst = out + c * plane;
    // Divide rather than multiply by reciprocals: this is the exact float arithmetic of
    // ToTensor (p / 255) followed by Normalize ((x - mean) / std).
    for (int64_t i = 0; i < plane; ++i) dst[i] = (static_cast<float>(src[i]) / pre.divisor - mean) / std;
  }
}

}  // namespace veto
