// CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin): fixed 3073-byte records of
// one label byte (0-9) followed by the 32x32 red, green and blue planes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veto {

// A batch of 8-bit images in CHW layout, as read from disk (before normalization).
struct ImageSet {
  int64_t count = 0, channels = 3, height = 32, width = 32;
  std::vector<uint8_t> pixels;     // count * channels * height * width, CHW per image
  std::vector<int> labels;         // per image; -1 when unknown
  std::vector<std::string> names;  // per image: "<path>#<record index>" or the image path
};

// Reads the first `limit` records (all when limit < 0). Missing or empty files, a size that
// is not a whole number of records ("truncated"), and label bytes above 9 (naming the
// record) are errors naming the file.
ImageSet read_cifar(const std::string& path, int64_t limit = -1);
// Parses an in-memory CIFAR-10 file the same way; `source` names it in error messages and
// in the image names (tests, fuzzing).
ImageSet parse_cifar(const std::string& bytes, const std::string& source, int64_t limit = -1);

}  // namespace veto
