#include "runtime/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto {
namespace {

// Tensor bytes are copied to and from host memory as-is, which is only right on a
// little-endian host (every machine veto targets).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

// The reference implementation refuses headers above 100 MB (HeaderTooLarge); so do we,
// which also bounds the JSON parser's memory on hostile input.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Whole-file bound for read_safetensors (the buffer is read into memory).
constexpr size_t kMaxFileBytes = size_t{1} << 36;
constexpr const char* kMetadataKey = "__metadata__";
// A valid header nests 3 levels (header, tensor entry, shape). The reference reader parses
// with serde_json, whose recursion limit is 128; the same bound keeps nlohmann's recursive
// dump() (used in error messages) from overflowing the stack on "[[[[..." headers.
constexpr int kMaxHeaderDepth = 128;

using Json = nlohmann::json;

uint64_t read_le_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void write_le_u64(std::ostream& out, uint64_t v) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.write(bytes, 8);
}

// Reads a JSON number that must be a non-negative integer fitting int64 (shape dims,
// offsets). nlohmann stores negative integers as number_integer and fractions/huge values
// as number_float, so "is unsigned" is exactly "non-negative integer within uint64".
bool get_count(const Json& value, uint64_t& out) {
  if (!value.is_number_unsigned()) return false;
  out = value.get<uint64_t>();
  return out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

struct Entry {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& source, const std::string& name, const Json& info, uint64_t buffer_size) {
  auto where = [&] { return source + ": tensor '" + name + "': "; };
  if (!info.is_object()) fail(where(), "header entry is not a JSON object");

  Entry e;
  e.name = name;
  const auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string()) fail(where(), "missing or non-string \"dtype\"");
  e.dtype = dtype->get<std::string>();
  const size_t element_size = safetensors_dtype_size(e.dtype);
  if (element_size == 0) fail(where(), "unknown dtype '", e.dtype, "'");

  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array()) fail(where(), "missing \"shape\" array");
  for (const Json& d : *shape) {
    uint64_t dim = 0;
    if (!get_count(d, dim)) fail(where(), "shape must be a list of non-negative integers, got ", shape->dump());
    e.shape.dims.push_back(static_cast<int64_t>(dim));
  }
  // numel with an overflow guard: the tensor must fit the buffer, so any running product
  // above buffer_size / element_size is already an error (a zero dim makes it empty).
  const uint64_t max_elements = buffer_size / element_size;
  const bool empty = std::find(e.shape.dims.begin(), e.shape.dims.end(), 0) != e.shape.dims.end();
  uint64_t numel = empty ? 0 : 1;
  for (int64_t d : e.shape.dims) {
    if (empty) break;
    if (numel > max_elements / static_cast<uint64_t>(d))
      fail(where(), "shape ", e.shape.str(), " of ", e.dtype, " needs more bytes than the ", buffer_size,
           "-byte data buffer holds");
    numel *= static_cast<uint64_t>(d);
  }
  if (empty) {
    // An empty tensor needs no bytes, but its other dimensions must still multiply to a
    // count that fits int64, which Shape::numel and stride computations use.
    uint64_t count = 1;
    for (int64_t d : e.shape.dims) {
      if (d == 0) continue;
      if (count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(d))
        fail(where(), "shape ", e.shape.str(), " has more elements than fit in 64 bits");
      count *= static_cast<uint64_t>(d);
    }
  }

  const auto offsets = info.find("data_offsets");
  if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2 || !get_count((*offsets)[0], e.begin) ||
      !get_count((*offsets)[1], e.end))
    fail(where(), "\"data_offsets\" must be [begin, end] with non-negative integers");
  if (e.begin > e.end || e.end > buffer_size)
    fail(where(), "data_offsets [", e.begin, ", ", e.end, "] out of range of the ", buffer_size, "-byte data buffer");
  const uint64_t need = numel * element_size;
  if (e.end - e.begin != need)
    fail(where(), "data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes but shape ",
         e.shape.str(), " of ", e.dtype, " needs ", need, " bytes");
  return e;
}

// Parses the header JSON, rejecting duplicate keys (nlohmann would silently keep the last).
Json parse_header_json(const std::string& source, const char* begin, const char* end) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool duplicate_is_tensor = false;
  auto track_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    // `depth` counts the containers around the one starting.
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxHeaderDepth)
      fail(source, ": invalid safetensors JSON header: nested deeper than ", kMaxHeaderDepth, " levels");
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && duplicate.empty() && !open_objects.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor = open_objects.size() == 1;
      }
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(begin, end, track_keys);
  } catch (const Json::exception& e) {
    fail(source, ": invalid safetensors JSON header: ", e.what());
  }
  if (!duplicate.empty()) {
    if (duplicate_is_tensor) fail(source, ": duplicate tensor name '", duplicate, "' in safetensors header");
    fail(source, ": duplicate key '", duplicate, "' in safetensors header");
  }
  if (!header.is_object()) fail(source, ": safetensors header is not a JSON object");
  return header;
}

// Checks a tensor about to be written and returns its byte count.
uint64_t checked_size(const std::string& source, const SafeTensor& t) {
  const size_t element_size = safetensors_dtype_size(t.dtype);
  if (element_size == 0) fail(source, ": cannot write tensor '", t.name, "': unknown dtype '", t.dtype, "'");
  if (t.name == kMetadataKey) fail(source, ": cannot write a tensor named '", kMetadataKey, "' (reserved)");
  uint64_t numel = 1;
  for (int64_t d : t.shape.dims) {
    if (d < 0) fail(source, ": cannot write tensor '", t.name, "': negative dimension in shape ", t.shape.str());
    numel *= static_cast<uint64_t>(d);
  }
  if (t.bytes.size() / element_size != numel || t.bytes.size() % element_size != 0)
    fail(source, ": cannot write tensor '", t.name, "': ", t.bytes.size(), " bytes do not match shape ", t.shape.str(),
         " of ", t.dtype);
  return t.bytes.size();
}

// The header text, already padded with spaces so the buffer starts 8-byte aligned.
std::string build_header(const std::string& source, const SafetensorsFile& file) {
  Json header = Json::object();
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;
  uint64_t offset = 0;
  for (const SafeTensor& t : file.tensors) {
    const uint64_t size = checked_size(source, t);
    if (header.contains(t.name)) fail(source, ": cannot write duplicate tensor name '", t.name, "'");
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape.dims}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(source, ": cannot write safetensors header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_body(std::ostream& out, const std::string& header, const SafetensorsFile& file) {
  write_le_u64(out, header.size());
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const SafeTensor& t : file.tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

Tensor SafeTensor::to_float() const {
  if (dtype != "F32") fail("tensor '", name, "': dtype ", dtype, " cannot be read as F32");
  Tensor t(shape);
  VETO_CHECK(bytes.size() == static_cast<size_t>(t.numel()) * sizeof(float), "tensor '", name, "': ", bytes.size(),
             " bytes do not match shape ", shape.str(), " of F32");
  if (!bytes.empty()) std::memcpy(t.data(), bytes.data(), bytes.size());
  return t;
}

std::vector<int64_t> SafeTensor::to_int64() const {
  const int64_t n = shape.numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (dtype == "I64") {
    VETO_CHECK(bytes.size() == out.size() * 8, "tensor '", name, "': ", bytes.size(), " bytes do not match shape ",
               shape.str(), " of I64");
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  } else if (dtype == "I32") {
    VETO_CHECK(bytes.size() == out.size() * 4, "tensor '", name, "': ", bytes.size(), " bytes do not match shape ",
               shape.str(), " of I32");
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      out[i] = v;
    }
  } else {
    fail("tensor '", name, "': dtype ", dtype, " cannot be read as integers (need I64 or I32)");
  }
  return out;
}

SafeTensor make_f32(const std::string& name, const Tensor& t) {
  SafeTensor s;
  s.name = name;
  s.dtype = "F32";
  s.shape = t.shape();
  s.bytes.resize(static_cast<size_t>(t.numel()) * sizeof(float));
  if (!s.bytes.empty()) std::memcpy(s.bytes.data(), t.data(), s.bytes.size());
  return s;
}

SafeTensor make_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values) {
  VETO_CHECK(shape.numel() == static_cast<int64_t>(values.size()), "tensor '", name, "': shape ", shape.str(),
             " given ", values.size(), " values");
  SafeTensor s;
  s.name = name;
  s.dtype = "I64";
  s.shape = shape;
  s.bytes.resize(values.size() * sizeof(int64_t));
  if (!s.bytes.empty()) std::memcpy(s.bytes.data(), values.data(), s.bytes.size());
  return s;
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  for (const SafeTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const SafeTensor& SafetensorsFile::get(const std::string& name) const {
  const SafeTensor* t = find(name);
  if (!t) fail(source.empty() ? std::string("safetensors") : source, ": missing tensor '", name, "'");
  return *t;
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  const uint64_t file_size = bytes.size();
  if (file_size < 8)
    fail(source, ": truncated safetensors file: ", file_size, " bytes, too short for the 8-byte header length");
  const uint64_t header_size = read_le_u64(bytes.data());
  if (header_size > kMaxHeaderBytes)
    fail(source, ": safetensors header length ", header_size, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (header_size > file_size - 8)
    fail(source, ": truncated safetensors file: header length ", header_size, " exceeds the ", file_size - 8,
         " bytes that follow it");
  const char* header_begin = bytes.data() + 8;
  const Json header = parse_header_json(source, header_begin, header_begin + header_size);

  const uint64_t buffer_offset = 8 + header_size;
  const uint64_t buffer_size = file_size - buffer_offset;
  SafetensorsFile file;
  file.source = source;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      if (!item.value().is_object()) fail(source, ": \"", kMetadataKey, "\" is not a JSON object");
      for (const auto& m : item.value().items()) {
        if (!m.value().is_string())
          fail(source, ": \"", kMetadataKey, "\" value for '", m.key(), "' is not a string: ", m.value().dump());
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(source, item.key(), item.value(), buffer_size));
  }

  // The spec requires the tensors to tile the buffer exactly: no overlap, no gap, no tail.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < cursor)
      fail(source, ": tensors '", previous->name, "' and '", e.name, "' overlap in the data buffer (offset ", e.begin,
           " < ", cursor, ")");
    if (e.begin > cursor)
      fail(source, ": data buffer bytes [", cursor, ", ", e.begin, ") before tensor '", e.name,
           "' belong to no tensor (data_offsets must cover the buffer exactly)");
    cursor = e.end;
    previous = &e;
  }
  if (cursor != buffer_size)
    fail(source, ": data buffer bytes [", cursor, ", ", buffer_size,
         ") belong to no tensor (data_offsets must cover the buffer exactly)");

  file.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    SafeTensor t;
    t.name = std::move(e.name);
    t.dtype = std::move(e.dtype);
    t.shape = std::move(e.shape);
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data() + buffer_offset);
    t.bytes.assign(data + e.begin, data + e.end);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path, kMaxFileBytes), path);
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  const std::string label = file.source.empty() ? std::string("safetensors") : file.source;
  const std::string header = build_header(label, file);
  std::ostringstream out;
  write_body(out, header, file);
  return out.str();
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  // Build (and so validate) the header before the temp file exists.
  const std::string header = build_header(path, file);
  write_file_atomic(path, [&](std::ostream& out) { write_body(out, header, file); });
}

const std::string& veto_metadata(const SafetensorsFile& file, const std::string& key, const std::string& kind) {
  auto it = file.metadata.find(key);
  VETO_CHECK(it != file.metadata.end(), file.source, ": not a veto ", kind, " file (metadata '", key, "' is missing)");
  return it->second;
}

void check_veto_format(const SafetensorsFile& file, const std::string& format, const std::string& kind) {
  auto it = file.metadata.find("format");
  const std::string got = it == file.metadata.end() ? "" : it->second;
  VETO_CHECK(got == format, file.source, ": not a veto ", kind, " file (format '", got, "', expected '", format, "')");
}

}  // namespace veto
