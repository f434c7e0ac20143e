#include "runtime/io/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <ostream>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, ".npy I/O assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kMaxFileBytes = size_t{1} << 36;

// One value of the header dict: the only Python literals NumPy writes there.
struct Literal {
  enum Kind { kString, kBool, kTuple } kind = kString;
  std::string text;
  bool flag = false;
  std::vector<int64_t> ints;
};

// A parser for the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// NumPy reads it with ast.literal_eval; this accepts the subset NumPy itself writes.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  std::map<std::string, Literal> parse_dict() {
    std::map<std::string, Literal> dict;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      if (!dict.emplace(key, parse_value()).second) bad("duplicate key '" + key + "'");
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != '}') bad("expected ',' or '}'");
    }
    ++i_;
    skip_space();
    if (i_ != s_.size()) bad("text after the closing '}'");
    return dict;
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }

  [[noreturn]] void bad(const std::string& what) const {
    // Quote the header for the message, but keep it one printable line.
    std::string shown;
    for (size_t k = 0; k < s_.size() && k < 200; ++k) {
      const unsigned char c = static_cast<unsigned char>(s_[k]);
      shown += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
    }
    fail(source_, ": malformed .npy header (", what, " at character ", i_, "): ", shown);
  }

  std::string parse_string() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string");
    const size_t end = s_.find(quote, i_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }

  int64_t parse_int() {
    if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("expected a non-negative integer");
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const int digit = peek() - '0';
      if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) bad("integer too large");
      v = v * 10 + digit;
      ++i_;
    }
    if (peek() == 'L') ++i_;  // Python 2 longs, as written by old NumPy
    return v;
  }

  Literal parse_value() {
    Literal value;
    const char c = peek();
    if (c == '\'' || c == '"') {
      value.kind = Literal::kString;
      value.text = parse_string();
    } else if (s_.compare(i_, 4, "True") == 0 || s_.compare(i_, 5, "False") == 0) {
      value.kind = Literal::kBool;
      value.flag = s_[i_] == 'T';
      i_ += value.flag ? 4 : 5;
    } else if (c == '(') {
      value.kind = Literal::kTuple;
      ++i_;
      for (;;) {
        skip_space();
        if (peek() == ')') break;
        value.ints.push_back(parse_int());
        skip_space();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        if (peek() != ')') bad("expected ',' or ')' in the shape tuple");
      }
      ++i_;
    } else {
      bad("unsupported value");
    }
    return value;
  }

  const std::string& s_;
  const std::string& source_;
  size_t i_ = 0;
};

std::string shape_repr(const Shape& shape) {
  // Python's tuple repr: "()", "(5,)", "(2, 3)".
  std::string s = "(";
  for (int i = 0; i < shape.rank(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.rank() == 1) s += ",";
  return s + ")";
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& source) {
  if (bytes.size() < kMagicSize + 2 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0)
    fail(source, ": not a .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<uint8_t>(bytes[6]), minor = static_cast<uint8_t>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0) fail(source, ": unsupported .npy format version ", major, ".", minor);
  // Version 1.0 stores the header length as u16, 2.0 and 3.0 (UTF-8 header) as u32.
  const size_t length_size = major == 1 ? 2 : 4;
  const size_t header_start = kMagicSize + 2 + length_size;
  if (bytes.size() < header_start) fail(source, ": truncated .npy file: ", bytes.size(), " bytes");
  uint64_t header_size = 0;
  for (size_t k = 0; k < length_size; ++k)
    header_size |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[kMagicSize + 2 + k])) << (8 * k);
  if (header_size > bytes.size() - header_start)
    fail(source, ": truncated .npy file: header length ", header_size, " exceeds the ", bytes.size() - header_start,
         " bytes that follow it");

  const std::string header = bytes.substr(header_start, header_size);
  const auto dict = HeaderParser(header, source).parse_dict();
  for (const auto& [key, value] : dict)
    if (key != "descr" && key != "fortran_order" && key != "shape")
      fail(source, ": unexpected key '", key, "' in the .npy header");
  const auto descr = dict.find("descr"), fortran = dict.find("fortran_order"), shape_it = dict.find("shape");
  if (descr == dict.end() || fortran == dict.end() || shape_it == dict.end())
    fail(source, ": .npy header must have 'descr', 'fortran_order' and 'shape'");
  if (descr->second.kind != Literal::kString)
    fail(source, ": unsupported .npy dtype (structured array); veto reads '<f4' or '<f8'");
  if (fortran->second.kind != Literal::kBool) fail(source, ": .npy 'fortran_order' is not True or False");
  if (shape_it->second.kind != Literal::kTuple) fail(source, ": .npy 'shape' is not a tuple");

  const std::string& dtype = descr->second.text;
  size_t item_size = 0;
  if (dtype == "<f4")
    item_size = 4;
  else if (dtype == "<f8")
    item_size = 8;
  else
    fail(source, ": unsupported .npy dtype '", dtype, "'; veto reads '<f4' or '<f8'");

  const Shape shape(shape_it->second.ints);
  // In rank 0 and 1 both orders are the same bytes; beyond that we would need a transpose.
  if (fortran->second.flag && shape.rank() > 1)
    fail(source, ": Fortran-order .npy arrays are not supported (shape ", shape.str(),
         "); save a C-order array, e.g. np.ascontiguousarray");

  const uint64_t data_size = bytes.size() - header_start - header_size;
  bool empty = false;
  for (int64_t d : shape.dims) empty = empty || d == 0;
  if (empty) {
    // An empty array holds no data, but its other dimensions must still multiply to a size
    // that fits (NumPy refuses "array is too big" the same way): Shape::numel and stride
    // computations multiply them in int64. (A non-empty one is bounded by the data below.)
    uint64_t nonzero_bytes = item_size;
    for (int64_t d : shape.dims) {
      if (d == 0) continue;
      if (nonzero_bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(d))
        fail(source, ": .npy shape ", shape.str(), " of '", dtype, "' is too big (its size does not fit 64 bits)");
      nonzero_bytes *= static_cast<uint64_t>(d);
    }
  }
  uint64_t numel = empty ? 0 : 1;
  for (int64_t d : shape.dims) {
    if (empty) break;
    // Guards the multiplication: a byte count that does not fit 64 bits is surely short.
    if (numel > (std::numeric_limits<uint64_t>::max() / item_size) / static_cast<uint64_t>(d))
      fail(source, ": truncated .npy data: shape ", shape.str(), " of '", dtype, "' needs more than the ", data_size,
           " bytes present");
    numel *= static_cast<uint64_t>(d);
  }
  if (numel * item_size != data_size)
    fail(source, numel * item_size > data_size ? ": truncated .npy data: shape " : ": extra bytes in .npy data: shape ",
         shape.str(), " of '", dtype, "' needs ", numel * item_size, " bytes, the file has ", data_size);

  Tensor t(shape);
  const char* data = bytes.data() + header_start + header_size;
  if (item_size == 4) {
    if (numel) std::memcpy(t.data(), data, numel * 4);
  } else {
    for (uint64_t k = 0; k < numel; ++k) {
      double v;
      std::memcpy(&v, data + 8 * k, 8);
      t[static_cast<int64_t>(k)] = static_cast<float>(v);
    }
  }
  return t;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path, kMaxFileBytes), path); }

void write_npy(const std::string& path, const Tensor& t) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_repr(t.shape()) + ", }";
  // NumPy (>= 1.24) reserves room for the first axis to grow to 21 digits; doing the same
  // keeps our files byte-identical to numpy.save.
  if (t.shape().rank() > 0) dict.append(21 - std::min<size_t>(21, std::to_string(t.shape()[0]).size()), ' ');
  // Like numpy.lib.format._wrap_header: pad with spaces and a final '\n' so the data starts
  // at a multiple of 64 bytes (always at least one space).
  const size_t prefix_v1 = kMagicSize + 2 + 2;
  size_t prefix = prefix_v1;
  size_t padded = dict.size() + 1;
  padded += 64 - (prefix + padded) % 64;
  int major = 1;
  if (padded > 0xffff) {  // only huge ranks; NumPy switches to 2.0 the same way
    major = 2;
    prefix = kMagicSize + 2 + 4;
    padded = dict.size() + 1;
    padded += 64 - (prefix + padded) % 64;
  }
  dict.append(padded - dict.size() - 1, ' ');
  dict += '\n';

  std::string head(kMagic, kMagicSize);
  head += static_cast<char>(major);
  head += '\0';
  for (size_t k = 0; k < prefix - kMagicSize - 2; ++k) head += static_cast<char>((padded >> (8 * k)) & 0xff);
  head += dict;
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
  });
}

}  // namespace veto
