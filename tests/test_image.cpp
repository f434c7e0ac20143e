// Image decoding (stb_image), Pillow-compatible resizing, and input normalization.
// Fixtures are written with stb_image_write (PNG) at test time.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "runtime/error.h"
#include "runtime/io/npy.h"
#include "runtime/preprocess.h"

namespace veto {
namespace {

namespace fs = std::filesystem;

std::string test_folder() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(testing::TempDir()) / (std::string("veto_image_") + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// A deterministic RGB test pattern; the Python twin that produced the Pillow golden values
// below is: (x*37 + y*101 + c*53 + (x*y)%17*11) % 256 at [y, x, c].
Image pattern(int64_t width, int64_t height) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(static_cast<size_t>(width * height * 3));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        image.rgb[static_cast<size_t>((y * width + x) * 3 + c)] =
            static_cast<uint8_t>((x * 37 + y * 101 + c * 53 + (x * y) % 17 * 11) % 256);
  return image;
}

// Channel 0 of an image, row by row.
std::vector<int> red(const Image& image) {
  std::vector<int> out;
  for (size_t i = 0; i < image.rgb.size(); i += 3) out.push_back(image.rgb[i]);
  return out;
}

std::vector<int> all_values(const Image& image) { return std::vector<int>(image.rgb.begin(), image.rgb.end()); }

// ---- decoding -----------------------------------------------------------------------------

TEST(Image, PngRoundTripIsExact) {
  const std::string path = test_folder() + "/p.png";
  const Image src = pattern(7, 5);
  ASSERT_NE(stbi_write_png(path.c_str(), 7, 5, 3, src.rgb.data(), 7 * 3), 0);
  const Image back = load_image(path);
  EXPECT_EQ(back.width, 7);
  EXPECT_EQ(back.height, 5);
  EXPECT_EQ(back.source, path);
  EXPECT_EQ(back.rgb, src.rgb);
}

// Found by fuzz_image (corpus: regress-png-empty-first-idat): an empty first IDAT chunk
// (valid PNG, Pillow reads it) made stb_image call memcpy(NULL, ..., 0), undefined
// behaviour; stb_impl.cpp routes stb's memcpy through a wrapper that skips empty copies.
TEST(Image, PngWithAnEmptyFirstIdatChunk) {
  const Image src = pattern(5, 3);
  std::string png;
  ASSERT_NE(stbi_write_png_to_func(
                [](void* out, void* data, int size) {
                  static_cast<std::string*>(out)->append(static_cast<const char*>(data), static_cast<size_t>(size));
                },
                &png, 5, 3, 3, src.rgb.data(), 5 * 3),
            0);
  // Signature (8) + IHDR chunk (25); then a zero-length IDAT with its CRC.
  const std::string empty_idat("\x00\x00\x00\x00IDAT\x35\xaf\x06\x1e", 12);
  ASSERT_EQ(png.compare(37, 4, "IDAT"), 0);
  const Image back = decode_image(png.substr(0, 33) + empty_idat + png.substr(33), "e.png");
  EXPECT_EQ(back.rgb, src.rgb);
  // Only an empty IDAT: a clean error.
  const std::string iend = png.substr(png.size() - 12);
  EXPECT_EQ(error_of([&] { decode_image(png.substr(0, 33) + empty_idat + iend, "e.png"); }),
            "e.png: cannot decode image: no IDAT");
}

TEST(Image, JpegDecodesCloseToLibjpeg) {
  // A 16x8 baseline JPEG (4:2:0 chroma, quality 95) written by Pillow 9.4 / libjpeg-turbo
  // from the gradient [16x, 30y, 200 - 8x]. It is embedded rather than written with
  // stbi_write_jpg because that encoder left-shifts negative ints, which the
  // VETO_SANITIZE build (UBSan, no recovery) would abort on.
  const std::string jpeg(
      "\xff\xd8\xff\xe0\x00\x10\x4a\x46\x49\x46\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00\x02\x01"
      "\x01\x01\x01\x01\x02\x01\x01\x01\x02\x02\x02\x02\x02\x04\x03\x02\x02\x02\x02\x05\x04\x04\x03\x04\x06\x05\x06"
      "\x06\x06\x05\x06\x06\x06\x07\x09\x08\x06\x07\x09\x07\x06\x06\x08\x0b\x08\x09\x0a\x0a\x0a\x0a\x0a\x06\x08\x0b"
      "\x0c\x0b\x0a\x0c\x09\x0a\x0a\x0a\xff\xdb\x00\x43\x01\x02\x02\x02\x02\x02\x02\x05\x03\x03\x05\x0a\x07\x06\x07"
      "\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a"
      "\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\xff\xc0\x00\x11"
      "\x08\x00\x08\x00\x10\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xc4\x00\x15\x00\x01\x01\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07\xff\xc4\x00\x1a\x10\x00\x01\x05\x01\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x07\x09\x26\x33\x43\x51\xff\xc4\x00\x15\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x06\xff\xc4\x00\x1b\x11\x00\x01\x05\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x51\x00\x06\x07\x23\xd1\x08\x24\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00\x83\xa7\x0d"
      "\x7d\x5c\x77\x99\x17\xc4\xe1\xaf\xab\x8e\xf3\x20\x04\xf5\x24\xbb\x2d\xb8\x9d\x50\xdc\xc3\x2e\x3e\x28\xf4\x03"
      "\xab\xff\xd9",
      327);
  const std::string path = test_folder() + "/g.jpg";
  spit(path, jpeg);
  const Image image = load_image(path);
  ASSERT_EQ(image.width, 16);
  ASSERT_EQ(image.height, 8);
  auto pixel = [&](int y, int x) {
    const size_t i = static_cast<size_t>((y * 16 + x) * 3);
    return std::vector<int>{image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]};
  };
  // stb_image's IDCT and chroma upsampling differ from libjpeg-turbo by at most 2 levels
  // on this file (measured); these are Pillow's decoded values.
  const std::vector<std::pair<std::pair<int, int>, std::vector<int>>> pillow = {
      {{0, 0}, {0, 3, 185}}, {{3, 7}, {110, 92, 144}}, {{7, 15}, {244, 206, 95}}, {{4, 12}, {193, 119, 106}}};
  for (const auto& [at, expected] : pillow) {
    const std::vector<int> got = pixel(at.first, at.second);
    for (size_t c = 0; c < 3; ++c) EXPECT_NEAR(got[c], expected[c], 2) << "pixel " << at.first << "," << at.second;
  }
  // Debian's stb_image 2.27 would overflow its tables on a Huffman table with more than
  // 256 symbols; decode_image must refuse the file first.
  std::string bad = jpeg;
  const size_t dht = bad.find("\xff\xc4");
  ASSERT_NE(dht, std::string::npos);
  for (size_t k = 0; k < 16; ++k) bad[dht + 5 + k] = '\x20';  // 16 x 32 = 512 symbols
  EXPECT_EQ(error_of([&] { decode_image(bad, "bad.jpg"); }),
            "bad.jpg: cannot decode image: JPEG Huffman table with 512 symbols (at most 256)");
  // A scan that selects a table no DHT defined would decode with stb_image's uninitialized
  // tables (fuzz_image: out-of-bounds reads); the scan's second component asks for AC2, DC2.
  for (const auto& [selector, table] : {std::pair{'\x12', "AC2"}, std::pair{'\x21', "DC2"}}) {
    std::string undefined = jpeg;
    const size_t sos = undefined.find("\xff\xda\x00\x0c\x03\x01\x00\x02\x11");
    ASSERT_NE(sos, std::string::npos);
    undefined[sos + 8] = selector;
    EXPECT_EQ(error_of([&] { decode_image(undefined, "u.jpg"); }),
              std::string("u.jpg: cannot decode image: JPEG scan uses Huffman table ") + table +
                  ", which no DHT defines");
  }

  // Lossy, but still the gradient it was made from.
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 16; ++x) {
      const std::vector<int> got = pixel(y, x);
      EXPECT_NEAR(got[0], 16 * x, 20);
      EXPECT_NEAR(got[1], 30 * y, 20);
      EXPECT_NEAR(got[2], 200 - 8 * x, 20);
    }
}

TEST(Image, GrayBecomesThreeEqualChannels) {
  const std::string dir = test_folder();
  const std::vector<uint8_t> gray = {0, 50, 100, 150, 200, 255};
  ASSERT_NE(stbi_write_png((dir + "/g.png").c_str(), 3, 2, 1, gray.data(), 3), 0);
  const Image g = load_image(dir + "/g.png");
  ASSERT_EQ(g.rgb.size(), 18u);
  for (size_t i = 0; i < gray.size(); ++i)
    for (size_t c = 0; c < 3; ++c) EXPECT_EQ(g.rgb[i * 3 + c], gray[i]);

  // Gray + alpha: the alpha is dropped, not blended.
  const std::vector<uint8_t> gray_alpha = {10, 0, 20, 128, 30, 255};
  ASSERT_NE(stbi_write_png((dir + "/ga.png").c_str(), 3, 1, 2, gray_alpha.data(), 6), 0);
  EXPECT_EQ(load_image(dir + "/ga.png").rgb, (std::vector<uint8_t>{10, 10, 10, 20, 20, 20, 30, 30, 30}));
}

TEST(Image, RgbaDropsAlpha) {
  const std::string path = test_folder() + "/a.png";
  const std::vector<uint8_t> rgba = {1, 2, 3, 0, 40, 50, 60, 128, 200, 210, 220, 255};
  ASSERT_NE(stbi_write_png(path.c_str(), 3, 1, 4, rgba.data(), 12), 0);
  EXPECT_EQ(load_image(path).rgb, (std::vector<uint8_t>{1, 2, 3, 40, 50, 60, 200, 210, 220}));
}

TEST(Image, CorruptFilesAreReportedNotCrashed) {
  const std::string dir = test_folder();
  // Incompressible content so half the file really is missing pixel data.
  Image noisy;
  noisy.width = noisy.height = 32;
  std::mt19937 rng(7);
  for (int i = 0; i < 32 * 32 * 3; ++i) noisy.rgb.push_back(static_cast<uint8_t>(rng()));
  ASSERT_NE(stbi_write_png((dir + "/full.png").c_str(), 32, 32, 3, noisy.rgb.data(), 96), 0);
  const std::string png = slurp(dir + "/full.png");
  spit(dir + "/cut.png", png.substr(0, png.size() / 2));
  EXPECT_NE(error_of([&] { load_image(dir + "/cut.png"); }).find(dir + "/cut.png: cannot decode image: "),
            std::string::npos);
  // A small file whose IDAT claims 1 GiB: refused before stb_image allocates for it
  // (fuzz_image: it grew its buffer to 2 GiB, then found the data missing).
  std::string claims = png;
  ASSERT_EQ(claims.compare(37, 4, "IDAT"), 0);
  claims.replace(33, 4, std::string("\x40\x00\x00\x00", 4));
  EXPECT_EQ(error_of([&] { decode_image(claims, "big.png"); }),
            "big.png: cannot decode image: PNG chunk of 1073741824 bytes at offset 33 runs past the end of the " +
                std::to_string(png.size()) + "-byte file");

  std::string random_bytes;
  for (int i = 0; i < 1000; ++i) random_bytes += static_cast<char>(rng());
  spit(dir + "/random.png", random_bytes);
  EXPECT_EQ(error_of([&] { load_image(dir + "/random.png"); }),
            dir + "/random.png: cannot decode image: unknown image type");

  spit(dir + "/empty.png", "");
  EXPECT_NE(error_of([&] { load_image(dir + "/empty.png"); }).find("empty.png: cannot decode image: "),
            std::string::npos);
  EXPECT_EQ(error_of([&] { load_image(dir + "/absent.png"); }),
            dir + "/absent.png: cannot open: No such file or directory");
}

// Formats photos come in: fixtures from weights_tools/make_image_fixtures.py, compared with
// what Pillow decodes (libjpeg-turbo: stb_image's IDCT may differ by a few levels).
void expect_rgb_near(const Image& img, const Tensor& want_hwc, float tolerance, const std::string& what) {
  ASSERT_EQ(want_hwc.shape().rank(), 3) << what;
  ASSERT_EQ(img.height, want_hwc.shape()[0]) << what;
  ASSERT_EQ(img.width, want_hwc.shape()[1]) << what;
  float worst = 0;
  for (int64_t i = 0; i < want_hwc.numel(); ++i) worst = std::max(worst, std::abs(img.rgb[i] - want_hwc[i]));
  EXPECT_LE(worst, tolerance) << what;
}

TEST(Image, SixteenBitPngProgressiveAndCmykJpeg) {
  const std::string dir = std::string(VETO_TEST_DATA_DIR) + "/images/";
  // 16-bit gray (value v * 257) reads as 8-bit v on all three channels.
  const Image gray = load_image(dir + "gray16.png");
  const Tensor gray8 = read_npy(dir + "gray8.npy");
  ASSERT_EQ(gray.width * gray.height, gray8.numel());
  for (int64_t i = 0; i < gray8.numel(); ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(gray.rgb[i * 3 + c], gray8[i]) << "pixel " << i;
  expect_rgb_near(load_image(dir + "progressive.jpg"), read_npy(dir + "progressive_pillow_rgb.npy"), 3,
                  "progressive JPEG");
  expect_rgb_near(load_image(dir + "cmyk.jpg"), read_npy(dir + "cmyk_pillow_rgb.npy"), 3, "CMYK JPEG");
  // A truncated JPEG and one with a zero height in its frame header.
  const std::string out = test_folder();
  std::string jpeg = slurp(dir + "progressive.jpg");
  spit(out + "/cut.jpg", jpeg.substr(0, 400));
  EXPECT_EQ(error_of([&] { load_image(out + "/cut.jpg"); }), out + "/cut.jpg: cannot decode image: expected marker");
  const size_t sof = jpeg.find("\xff\xc2");
  ASSERT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, std::string(4, '\0'));
  spit(out + "/zero.jpg", jpeg);
  EXPECT_NE(error_of([&] { load_image(out + "/zero.jpg"); }).find("zero.jpg: "), std::string::npos);
}

TEST(Image, HugeDimensionsAreRefusedBeforeDecoding) {
  // A PNG signature and an IHDR claiming 40000 x 10 pixels, and nothing else: the size
  // check must fire from the header alone (stb_image does not verify the CRC here).
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += std::string("\x00\x00\x00\x0dIHDR", 8);
  png += std::string("\x00\x00\x9c\x40", 4);  // width 40000
  png += std::string("\x00\x00\x00\x0a", 4);  // height 10
  png += std::string("\x08\x02\x00\x00\x00", 5);
  png += std::string("\x00\x00\x00\x00", 4);  // CRC (unchecked)
  EXPECT_EQ(error_of([&] { decode_image(png, "huge.png"); }),
            "huge.png: image is 40000x10 pixels; at most 32768 per side is supported");
}

// decode_image's pixel limit (Pillow's decompression-bomb limit) can be lowered, never raised;
// fuzz_image lowers it to skip huge truncated JPEGs that would only be slow to decode.
TEST(Image, PixelLimitCanBeLoweredNotRaised) {
  auto png_header = [](uint32_t width, uint32_t height) {
    std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", 16);
    for (uint32_t v : {width, height})
      for (int shift = 24; shift >= 0; shift -= 8) png += static_cast<char>((v >> shift) & 0xff);
    return png + std::string("\x08\x02\x00\x00\x00\x00\x00\x00\x00", 9);
  };
  EXPECT_EQ(error_of([&] { decode_image(png_header(20000, 10000), "big.png"); }),
            "big.png: image is 20000x10000 pixels, more than the 178956970-pixel limit");
  EXPECT_EQ(error_of([&] { decode_image(png_header(20000, 10000), "big.png", int64_t{1} << 40); }),
            "big.png: image is 20000x10000 pixels, more than the 178956970-pixel limit");
  EXPECT_EQ(error_of([&] { decode_image(png_header(2000, 1000), "big.png", 1000000); }),
            "big.png: image is 2000x1000 pixels, more than the 1000000-pixel limit");
}

// ---- resizing -----------------------------------------------------------------------------

TEST(Resize, BilinearTwoTimesDownscaleByHand) {
  // Pillow's BILINEAR is a triangle filter widened by the scale factor when shrinking, so a
  // 2x downscale is NOT a 2x2 box average. For 4 -> 2 (scale 2, support 2):
  //   output 0 is centred at input coordinate 1.0 and takes pixels whose centres (0.5, 1.5,
  //   2.5) lie within 2: weights 1 - |d|/2 = 0.75, 0.75, 0.25 -> normalized 3/7, 3/7, 1/7;
  //   output 1 (centre 3.0) takes pixels 1..3 with weights 1/7, 3/7, 3/7.
  // With columns 0, 70, 140, 210: (0*3 + 70*3 + 140) / 7 = 50 and (70 + 140*3 + 210*3) / 7 = 160.
  // With rows offset by 0, 7, 14, 21 the vertical pass adds 35/7 = 5 and 112/7 = 16.
  // Pillow (9.4 and 13) gives the same [[55, 165], [66, 176]].
  Image image;
  image.width = image.height = 4;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) image.rgb.push_back(static_cast<uint8_t>(70 * x + 7 * y));
  const Image out = resize_image(image, 2, 2, "bilinear");
  EXPECT_EQ(red(out), (std::vector<int>{55, 165, 66, 176}));
}

TEST(Resize, BilinearUpscaleByHand) {
  // 2 -> 4 (scale 0.5, support 1): output centres fall at input 0.25, 0.75, 1.25, 1.75;
  // the edge outputs see one pixel only, the middle ones blend 3:1 and 1:3.
  Image image{2, 1, {0, 0, 0, 200, 200, 200}, ""};
  EXPECT_EQ(red(resize_image(image, 4, 1, "bilinear")), (std::vector<int>{0, 50, 150, 200}));
}

TEST(Resize, NearestByHand) {
  // Pillow NEAREST samples source floor((i + 0.5) * scale): for 4 -> 2 that is 1 and 3.
  Image image;
  image.width = image.height = 4;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) image.rgb.push_back(static_cast<uint8_t>(10 * y + x));
  EXPECT_EQ(red(resize_image(image, 2, 2, "nearest")), (std::vector<int>{11, 13, 31, 33}));
  // 2 -> 4 repeats each pixel twice.
  Image two{2, 1, {5, 5, 5, 9, 9, 9}, ""};
  EXPECT_EQ(red(resize_image(two, 4, 1, "nearest")), (std::vector<int>{5, 5, 9, 9}));
}

TEST(Resize, MatchesPillowOnAnOddPattern) {
  // Golden values from Pillow 9.4 (Debian 12, next to the PyTorch/torchvision used for goldens):
  // Image.fromarray(pattern(13, 7)).resize(size, filter). Pillow >= 13 runs the vertical
  // pass first when the height shrinks more than twice as much as the width (PR #9549),
  // which moves some 13x7 -> 20x3 bilinear values by one level; the others are unchanged.
  const Image src = pattern(13, 7);
  EXPECT_EQ(all_values(resize_image(src, 5, 9, "bilinear")),
            (std::vector<int>{39,  92,  145, 124, 177, 192, 142, 99,  94,  64,  117, 162, 149, 202, 75,  114, 156,
                              169, 139, 135, 144, 136, 142, 137, 101, 102, 127, 126, 179, 120, 123, 166, 152, 145,
                              134, 126, 129, 144, 145, 110, 120, 114, 129, 148, 113, 90,  143, 123, 130, 153, 135,
                              115, 123, 137, 110, 145, 113, 132, 121, 95,  105, 158, 151, 81,  134, 140, 83,  136,
                              167, 154, 122, 97,  74,  110, 163, 146, 119, 159, 130, 117, 159, 117, 153, 127, 137,
                              105, 134, 145, 121, 94,  154, 119, 138, 116, 131, 115, 93,  136, 134, 117, 132, 130,
                              129, 141, 82,  145, 141, 119, 105, 130, 85,  83,  136, 135, 110, 134, 110, 103, 151,
                              90,  132, 168, 118, 130, 98,  104, 119, 172, 108, 120, 87,  94,  108, 144, 95}));
  EXPECT_EQ(all_values(resize_image(src, 20, 3, "bilinear")),
            (std::vector<int>{
                87,  140, 138, 83,  136, 160, 84,  137, 176, 114, 167, 135, 144, 151, 140, 166, 118, 167, 125, 148,
                161, 125, 158, 142, 154, 151, 115, 148, 122, 145, 131, 122, 139, 102, 153, 99,  130, 114, 92,  119,
                92,  105, 52,  96,  145, 71,  124, 177, 101, 154, 174, 131, 184, 109, 161, 185, 63,  183, 181, 33,
                122, 160, 153, 119, 136, 158, 118, 119, 155, 124, 164, 112, 105, 152, 127, 80,  115, 163, 119, 124,
                123, 139, 132, 138, 144, 139, 190, 101, 134, 147, 79,  132, 139, 78,  131, 168, 122, 165, 109, 155,
                152, 80,  173, 72,  98,  111, 94,  141, 81,  134, 157, 129, 182, 116, 127, 117, 97,  116, 49,  87,
                172, 115, 168, 164, 134, 143, 149, 155, 114, 115, 155, 103, 107, 121, 111, 114, 78,  123, 135, 123,
                96,  123, 141, 91,  88,  141, 103, 105, 158, 144, 100, 153, 140, 73,  126, 89,  74,  127, 146, 111,
                124, 147, 198, 115, 67,  114, 105, 111, 73,  126, 122, 153, 206, 35,  125, 149, 80,  85,  84,  137}));
  EXPECT_EQ(all_values(resize_image(src, 5, 9, "nearest")),
            (std::vector<int>{37,  90,  143, 111, 164, 217, 222, 19,  72,  77,  130, 183, 151, 204, 1,   149, 202,
                              255, 245, 42,  95,  133, 186, 239, 21,  74,  127, 117, 170, 223, 149, 202, 255, 245,
                              42,  95,  133, 186, 239, 21,  74,  127, 117, 170, 223, 5,   58,  111, 123, 176, 229,
                              44,  97,  150, 34,  87,  140, 152, 205, 2,   117, 170, 223, 1,   54,  107, 24,  77,
                              130, 234, 31,  84,  118, 171, 224, 229, 26,  79,  135, 188, 241, 191, 244, 41,  247,
                              44,  97,  153, 206, 3,   85,  138, 191, 13,  66,  119, 102, 155, 208, 191, 244, 41,
                              188, 241, 38,  85,  138, 191, 13,  66,  119, 102, 155, 208, 191, 244, 41,  188, 241,
                              38,  197, 250, 47,  216, 13,  66,  82,  135, 188, 204, 1,   54,  154, 207, 4}));
  const std::vector<int> nearest_20x3 = all_values(resize_image(src, 20, 3, "nearest"));
  EXPECT_EQ(std::vector<int>(nearest_20x3.begin(), nearest_20x3.begin() + 30),
            (std::vector<int>{101, 154, 207, 101, 154, 207, 149, 202, 255, 197, 250, 47,  197, 250, 47,
                              245, 42,  95,  37,  90,  143, 37,  90,  143, 85,  138, 191, 133, 186, 239}));
  EXPECT_EQ(std::vector<int>(nearest_20x3.end() - 12, nearest_20x3.end()),
            (std::vector<int>{27, 80, 133, 188, 241, 38, 24, 77, 130, 24, 77, 130}));
}

TEST(Resize, SameSizeIsACopyAndBadArgumentsAreErrors) {
  const Image src = pattern(6, 4);
  EXPECT_EQ(resize_image(src, 6, 4, "bilinear").rgb, src.rgb);
  EXPECT_EQ(resize_image(src, 6, 4, "nearest").rgb, src.rgb);
  EXPECT_EQ(error_of([&] { resize_image(src, 3, 3, "bicubic"); }),
            "image: unknown interpolation \"bicubic\" (expected \"nearest\" or \"bilinear\")");
  EXPECT_NE(error_of([&] { resize_image(src, 0, 3, "nearest"); }).find("bad resize target 0x3"), std::string::npos);
}

TEST(Resize, CenterCropRoundsHalfToEvenLikeTorchvision) {
  // Column x holds value x. torchvision: left = int(round((w - crop) / 2.0)), and Python's
  // round(1.5) == 2, round(2.5) == 2.
  Image wide;
  wide.width = 7;
  wide.height = 1;
  for (int x = 0; x < 7; ++x)
    for (int c = 0; c < 3; ++c) wide.rgb.push_back(static_cast<uint8_t>(x));
  EXPECT_EQ(red(center_crop(wide, 2, 1)), (std::vector<int>{2, 3}));              // (7-2)/2 = 2.5 -> 2
  EXPECT_EQ(red(center_crop(wide, 4, 1)), (std::vector<int>{2, 3, 4, 5}));        // 1.5 -> 2
  EXPECT_EQ(red(center_crop(wide, 3, 1)), (std::vector<int>{2, 3, 4}));           // 2
  EXPECT_EQ(red(center_crop(wide, 6, 1)), (std::vector<int>{0, 1, 2, 3, 4, 5}));  // 0.5 -> 0
  EXPECT_EQ(error_of([&] { center_crop(wide, 8, 1); }), "image: cannot crop 8x1 from a 7x1 image");
}

// ---- preprocessing ------------------------------------------------------------------------

Preprocess imagenet_like() {
  Preprocess pre;
  pre.mean = {0.485f, 0.456f, 0.406f};
  pre.std = {0.229f, 0.224f, 0.225f};
  return pre;
}

TEST(Preprocess, NormalizeChwMatchesTheFormula) {
  Preprocess pre = imagenet_like();
  pre.height = 2;
  pre.width = 2;
  const std::vector<uint8_t> chw = {0, 1, 127, 255, 10, 20, 30, 40, 200, 201, 202, 203};
  std::vector<float> out(12);
  normalize_chw(chw.data(), 3, 2, 2, pre, out.data());
  for (size_t i = 0; i < 12; ++i) {
    const size_t c = i / 4;
    const float expected = (static_cast<float>(chw[i]) / 255.0f - pre.mean[c]) / pre.std[c];
    EXPECT_EQ(out[i], expected) << i;  // bit-exact: same float operations in the same order
  }
  EXPECT_EQ(error_of([&] { normalize_chw(chw.data(), 3, 2, 3, pre, out.data()); }),
            "image of 3x2x3 (CxHxW) does not match the model input 3x2x2");
}

TEST(Preprocess, NoneResizeNeedsTheExactSize) {
  Preprocess pre = imagenet_like();  // 32x32
  Image image = pattern(40, 30);
  image.source = "cat.png";
  EXPECT_EQ(error_of([&] { preprocess_image(image, pre); }),
            "cat.png: image is 40x30 but the model input is 32x32 (width x height) and preprocess resize is \"none\"");

  // At the right size it is a transpose to CHW plus normalize_chw.
  const Image right = pattern(32, 32);
  const Tensor t = preprocess_image(right, pre);
  EXPECT_EQ(t.shape(), (Shape{3, 32, 32}));
  const int64_t y = 5, x = 9, c = 2;
  const float p = right.rgb[static_cast<size_t>((y * 32 + x) * 3 + c)];
  EXPECT_EQ(t[c * 1024 + y * 32 + x], (p / 255.0f - pre.mean[2]) / pre.std[2]);
}

TEST(Preprocess, StretchAndShorterCropSizes) {
  Preprocess pre;
  pre.divisor = 1.0f;  // raw pixel values, to compare with resize_image directly
  pre.height = 28;
  pre.width = 28;
  pre.resize = "stretch";
  pre.interpolation = "nearest";
  const Image image = pattern(40, 30);
  const Tensor stretched = preprocess_image(image, pre);
  EXPECT_EQ(stretched.shape(), (Shape{3, 28, 28}));
  EXPECT_EQ(stretched[0], resize_image(image, 28, 28, "nearest").rgb[0]);

  // shorter_crop 32: 40x30 -> 42x32 (int(32 * 40 / 30) = 42), then crop 28x28 at
  // top = round(4 / 2) = 2, left = round(14 / 2) = 7.
  pre.resize = "shorter_crop";
  pre.resize_shorter = 32;
  pre.interpolation = "bilinear";
  const Tensor cropped = preprocess_image(image, pre);
  EXPECT_EQ(cropped.shape(), (Shape{3, 28, 28}));
  const Image resized = resize_image(image, 42, 32, "bilinear");
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 28; y += 9)
      for (int64_t x = 0; x < 28; x += 5)
        EXPECT_EQ(cropped[c * 28 * 28 + y * 28 + x], resized.rgb[static_cast<size_t>(((y + 2) * 42 + x + 7) * 3 + c)]);

  // Portrait: the width is the shorter side.
  const Tensor portrait = preprocess_image(pattern(30, 45), pre);
  EXPECT_EQ(portrait.shape(), (Shape{3, 28, 28}));

  pre.resize_shorter = 20;
  EXPECT_EQ(error_of([&] { preprocess_image(image, pre); }), "image: cannot crop 28x28 from a 26x20 image");
  pre.resize = "fit";
  EXPECT_NE(error_of([&] { preprocess_image(image, pre); }).find("unknown preprocess resize \"fit\""),
            std::string::npos);
}

// Found in review while writing fuzz_image (its presets are fixed, so it cannot reach
// this): resize_shorter comes from the model file and resize_shorter * longer overflowed
// int64 (undefined) before the resize size check could refuse it.
TEST(Preprocess, HugeResizeShorterIsAnErrorNotAnOverflow) {
  Preprocess pre;
  pre.height = pre.width = 28;
  pre.resize = "shorter_crop";
  pre.resize_shorter = int64_t{1} << 62;
  EXPECT_EQ(error_of([&] { preprocess_image(pattern(40, 30), pre); }),
            "image: preprocess resize_shorter 4611686018427387904 exceeds the 32768-pixel limit");
  pre.resize_shorter = 32769;
  EXPECT_NE(error_of([&] { preprocess_image(pattern(40, 30), pre); }).find("exceeds the 32768-pixel limit"),
            std::string::npos);
}

}  // namespace
}  // namespace veto
