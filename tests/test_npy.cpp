// .npy reader/writer: round trips, NumPy-identical output, and corrupt files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/error.h"
#include "runtime/io/npy.h"

namespace veto {
namespace {

namespace fs = std::filesystem;

std::string test_folder() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(testing::TempDir()) / (std::string("veto_npy_") + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A version-1.0 file around `dict`, padded like NumPy, followed by `data`.
std::string npy_v1(std::string dict, const std::string& data) {
  dict += std::string(64 - (10 + dict.size() + 1) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + data;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    parse_npy(bytes, "bad.npy");
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message;
    EXPECT_EQ(message.rfind("bad.npy: ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Npy, RoundTrip) {
  const std::string dir = test_folder();
  for (const Shape& shape : {Shape{2, 3, 4}, Shape{5}, Shape{}, Shape{2, 0, 3}}) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = 0.25f * static_cast<float>(i) - 1.0f;
    write_npy(dir + "/t.npy", t);
    const Tensor back = read_npy(dir + "/t.npy");
    EXPECT_EQ(back.shape(), shape) << shape.str();
    EXPECT_EQ(back.values(), t.values()) << shape.str();
  }
}

TEST(Npy, WritesExactlyWhatNumpySaveWrites) {
  // np.save of np.arange(6, dtype='<f4').reshape(2, 3) with NumPy 2.4: a 118-byte header
  // (room reserved for the first axis to grow), data at offset 128.
  const std::string dir = test_folder();
  write_npy(dir + "/a.npy", Tensor(Shape{2, 3}, {0, 1, 2, 3, 4, 5}));
  const std::string bytes = slurp(dir + "/a.npy");
  ASSERT_EQ(bytes.size(), 152u);
  EXPECT_EQ(bytes.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::string expected_header = dict + std::string(118 - dict.size() - 1, ' ') + "\n";
  EXPECT_EQ(bytes.substr(10, 118), expected_header);
  EXPECT_EQ(bytes.substr(128), bytes_of(std::vector<float>{0, 1, 2, 3, 4, 5}));

  // 1-D and 0-D shapes use Python's tuple spelling.
  write_npy(dir + "/b.npy", Tensor(Shape{5}));
  EXPECT_NE(slurp(dir + "/b.npy").find("'shape': (5,), }"), std::string::npos);
  write_npy(dir + "/c.npy", Tensor(Shape{}, {1.5f}));
  EXPECT_NE(slurp(dir + "/c.npy").find("'shape': (), }"), std::string::npos);
  EXPECT_EQ(slurp(dir + "/c.npy").size(), 132u);  // as np.save(np.float32(1.5))
}

TEST(Npy, ConvertsFloat64ToFloat) {
  const std::string bytes = npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                   bytes_of(std::vector<double>{0.5, -1.25, 1e-3}));
  const Tensor t = parse_npy(bytes, "f8.npy");
  EXPECT_EQ(t.shape(), (Shape{3}));
  EXPECT_EQ(t.values(), (std::vector<float>{0.5f, -1.25f, static_cast<float>(1e-3)}));
}

TEST(Npy, ReadsVersion2And3Headers) {
  // numpy.lib.format.write_array(f, np.array([0.5, -1.25, 1e-3]), version=(2, 0)); 3.0
  // differs only in the version byte (and a UTF-8 header).
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  dict += std::string(116 - dict.size() - 1, ' ') + "\n";
  const std::string data = bytes_of(std::vector<double>{0.5, -1.25, 1e-3});
  for (char major : {'\x02', '\x03'}) {
    std::string bytes("\x93NUMPY", 6);
    bytes += major;
    bytes += std::string("\x00\x74\x00\x00\x00", 5);
    bytes += dict + data;
    const Tensor t = parse_npy(bytes, "v2.npy");
    EXPECT_EQ(t.values(), (std::vector<float>{0.5f, -1.25f, static_cast<float>(1e-3)}));
  }
}

TEST(Npy, AcceptsOldStyleHeaders) {
  // Older NumPy versions: no growth padding, Python-2 longs, no trailing comma.
  const Tensor t = parse_npy(
      npy_v1("{'descr':'<f4','fortran_order':False,'shape':(1L, 2L)}", bytes_of(std::vector<float>{1, 2})), "old.npy");
  EXPECT_EQ(t.shape(), (Shape{1, 2}));
}

TEST(Npy, RejectsWrongMagic) {
  expect_error("PK\x03\x04 this is a zip", "not a .npy file (missing the \\x93NUMPY magic)");
  expect_error("", "not a .npy file");
  expect_error(std::string("\x93NUMPY\x04\x00", 8), "unsupported .npy format version 4.0");
}

TEST(Npy, RejectsTruncatedFiles) {
  const std::string good =
      npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", bytes_of(std::vector<float>(12, 1.0f)));
  expect_error(good.substr(0, good.size() - 8),
               "truncated .npy data: shape (3,4) of '<f4' needs 48 bytes, the file has 40");
  expect_error(good + "xx", "extra bytes in .npy data: shape (3,4) of '<f4' needs 48 bytes, the file has 50");
  expect_error(good.substr(0, 20), "truncated .npy file: header length 118 exceeds the 10 bytes that follow it");
  // A shape whose element count overflows 64 bits is reported, not wrapped around.
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", "abcd"),
               "truncated .npy data: shape (4294967296,4294967296,16) of '<f4' needs more than the 4 bytes present");
}

// Found in review for fuzz_npy, reproduced with it (corpus: regress-empty-shape-overflow):
// an empty array whose other dimensions overflow int64 reached Shape::numel (signed
// overflow, undefined).
TEST(Npy, RejectsEmptyShapesWhoseOtherDimensionsOverflow) {
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 2, 0), }", ""),
               ".npy shape (9223372036854775807,2,0) of '<f4' is too big (its size does not fit 64 bits)");
  expect_error(npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1152921504606846976), }", ""),
               "is too big");
  // Large but representable empty shapes stay valid, as in NumPy.
  EXPECT_EQ(parse_npy(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000000000000), }", ""), "e.npy")
                .shape(),
            (Shape{0, 1000000000000}));
}

TEST(Npy, RejectsFortranOrder) {
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", bytes_of(std::vector<float>(6))),
               "Fortran-order .npy arrays are not supported (shape (2,3))");
  // 1-D arrays are laid out the same either way.
  const Tensor t = parse_npy(
      npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", bytes_of(std::vector<float>{3, 4})), "f.npy");
  EXPECT_EQ(t.values(), (std::vector<float>{3, 4}));
}

TEST(Npy, RejectsUnsupportedDtypesAndBadHeaders) {
  expect_error(npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "abcd"),
               "unsupported .npy dtype '>f4'; veto reads '<f4' or '<f8'");
  expect_error(npy_v1("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", "abcdefgh"),
               "unsupported .npy dtype '<i8'");
  expect_error(npy_v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"),
               "malformed .npy header (unsupported value");
  expect_error(npy_v1("{'descr': '<f4', 'shape': (1,), }", "abcd"),
               ".npy header must have 'descr', 'fortran_order' and 'shape'");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", "abcd"),
               "malformed .npy header (unsupported value");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "abcd"),
               "malformed .npy header (expected a non-negative integer");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 'x', }", "abcd"),
               "unexpected key 'extra' in the .npy header");
}

TEST(Npy, MissingFileNamesThePath) {
  const std::string path = test_folder() + "/absent.npy";
  try {
    read_npy(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": cannot open: No such file or directory");
  }
}

}  // namespace
}  // namespace veto
