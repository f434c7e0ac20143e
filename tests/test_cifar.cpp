// CIFAR-10 binary reader, against the bundled test records 0-999.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/error.h"
#include "runtime/io/cifar.h"

namespace veto {
namespace {

namespace fs = std::filesystem;

const std::string kBundled = std::string(VETO_REPO_DIR) + "/data/cifar10_test_0-999.bin";

std::string test_folder() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(testing::TempDir()) / (std::string("veto_cifar_") + info->name());
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

std::string error_of(const std::string& path, int64_t limit = -1) {
  try {
    read_cifar(path, limit);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Cifar, ReadsBundledTestRecords) {
  const ImageSet set = read_cifar(kBundled);
  EXPECT_EQ(set.count, 1000);
  EXPECT_EQ(set.channels, 3);
  EXPECT_EQ(set.height, 32);
  EXPECT_EQ(set.width, 32);
  ASSERT_EQ(set.pixels.size(), 1000u * 3072u);
  ASSERT_EQ(set.labels.size(), 1000u);
  ASSERT_EQ(set.names.size(), 1000u);
  // The first CIFAR-10 test images are a cat, two ships and an airplane.
  EXPECT_EQ(set.labels[0], 3);
  EXPECT_EQ(set.labels[1], 8);
  EXPECT_EQ(set.labels[2], 8);
  EXPECT_EQ(set.labels[3], 0);
  const std::vector<uint8_t> first_red(set.pixels.begin(), set.pixels.begin() + 9);
  EXPECT_EQ(first_red, (std::vector<uint8_t>{158, 159, 165, 166, 160, 156, 162, 159, 158}));
  EXPECT_EQ(set.names[0], kBundled + "#0");
  EXPECT_EQ(set.names[17], kBundled + "#17");

  // Record 1 starts right after record 0's 3072 pixel bytes (the label bytes are dropped).
  const std::string raw = slurp(kBundled);
  EXPECT_EQ(set.pixels[3072], static_cast<uint8_t>(raw[3073 + 1]));
  EXPECT_EQ(set.pixels[999 * 3072 + 3071], static_cast<uint8_t>(raw.back()));
}

TEST(Cifar, LimitReadsAPrefix) {
  const ImageSet five = read_cifar(kBundled, 5);
  EXPECT_EQ(five.count, 5);
  EXPECT_EQ(five.pixels.size(), 5u * 3072u);
  EXPECT_EQ(five.labels, (std::vector<int>{3, 8, 8, 0, 6}));
  EXPECT_EQ(read_cifar(kBundled, 0).count, 0);
  EXPECT_EQ(read_cifar(kBundled, 5000).count, 1000);
}

TEST(Cifar, RejectsTruncatedFiles) {
  const std::string dir = test_folder();
  const std::string raw = slurp(kBundled);
  spit(dir + "/cut.bin", raw.substr(0, 2 * 3073 + 100));
  EXPECT_EQ(error_of(dir + "/cut.bin"),
            dir + "/cut.bin: truncated CIFAR-10 file: 6246 bytes is not a multiple of the 3073-byte record");
  // Even a prefix read refuses a file that is not whole records: it is not what it claims.
  EXPECT_NE(error_of(dir + "/cut.bin", 1).find("truncated"), std::string::npos);
  spit(dir + "/empty.bin", "");
  EXPECT_EQ(error_of(dir + "/empty.bin"), dir + "/empty.bin: empty CIFAR-10 file");
  EXPECT_EQ(error_of(dir + "/absent.bin"), dir + "/absent.bin: cannot open: No such file or directory");
}

TEST(Cifar, RejectsBadLabelByte) {
  const std::string dir = test_folder();
  std::string raw = slurp(kBundled).substr(0, 3 * 3073);
  raw[2 * 3073] = static_cast<char>(10);
  spit(dir + "/bad.bin", raw);
  EXPECT_EQ(error_of(dir + "/bad.bin"),
            dir + "/bad.bin: record 2 has label byte 10, expected 0-9 (not a CIFAR-10 file?)");
  // Records before the bad one are still readable with a limit.
  EXPECT_EQ(read_cifar(dir + "/bad.bin", 2).count, 2);
}

TEST(Cifar, ParsesBytesLikeTheFileReader) {
  const std::string raw = slurp(kBundled).substr(0, 3 * 3073);
  const ImageSet set = parse_cifar(raw, "mem.bin", 2);
  EXPECT_EQ(set.count, 2);
  EXPECT_EQ(set.labels, (std::vector<int>{3, 8}));
  EXPECT_EQ(set.names[1], "mem.bin#1");
  EXPECT_EQ(set.pixels, read_cifar(kBundled, 2).pixels);
  try {
    parse_cifar(raw.substr(1), "mem.bin");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "mem.bin: truncated CIFAR-10 file: 9218 bytes is not a multiple of the 3073-byte record");
  }
}

}  // namespace
}  // namespace veto
