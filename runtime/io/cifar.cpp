#include "runtime/io/cifar.h"

#include <algorithm>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto {
namespace {
constexpr int64_t kSide = 32, kChannels = 3;
constexpr int64_t kImageBytes = kChannels * kSide * kSide;  // 3072
constexpr int64_t kRecordBytes = 1 + kImageBytes;           // 3073
// A CIFAR-10 batch is 30 MB; this leaves room for concatenated sets without letting a
// wrong path (a disk image, say) be read into memory.
constexpr size_t kMaxFileBytes = size_t{1} << 32;
}  // namespace

ImageSet parse_cifar(const std::string& bytes, const std::string& source, int64_t limit) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size == 0) fail(source, ": empty CIFAR-10 file");
  if (size % kRecordBytes != 0)
    fail(source, ": truncated CIFAR-10 file: ", size, " bytes is not a multiple of the ", kRecordBytes, "-byte record");

  const int64_t records = size / kRecordBytes;
  ImageSet set;
  set.count = limit < 0 ? records : std::min(limit, records);
  set.pixels.resize(static_cast<size_t>(set.count * kImageBytes));
  set.labels.resize(static_cast<size_t>(set.count));
  set.names.reserve(static_cast<size_t>(set.count));
  for (int64_t i = 0; i < set.count; ++i) {
    const char* record = bytes.data() + i * kRecordBytes;
    const int label = static_cast<uint8_t>(record[0]);
    if (label > 9) fail(source, ": record ", i, " has label byte ", label, ", expected 0-9 (not a CIFAR-10 file?)");
    set.labels[static_cast<size_t>(i)] = label;
    // The record's planes are already in CHW order.
    std::copy(record + 1, record + kRecordBytes, set.pixels.begin() + i * kImageBytes);
    set.names.push_back(source + "#" + std::to_string(i));
  }
  return set;
}

ImageSet read_cifar(const std::string& path, int64_t limit) {
  return parse_cifar(read_file(path, kMaxFileBytes), path, limit);
}

}  // namespace veto
