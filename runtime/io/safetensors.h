// The safetensors weight format (https://github.com/huggingface/safetensors):
//   8-byte little-endian u64 N | N bytes of JSON header | byte buffer
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the buffer) plus an optional "__metadata__" object of string -> string.
// Reading validates everything the spec requires before any tensor is allocated.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace veto {

struct SafeTensor {
  std::string name;
  // Spec dtype name: "F32", "F64", "I64", "I32", "U8", ... (F16/BF16/BOOL/... are kept as
  // raw bytes so a file that carries them still loads; only the converters below care).
  std::string dtype;
  Shape shape;
  std::vector<uint8_t> bytes;  // little-endian, dense row-major

  // F32 only; any other dtype is an error naming the tensor and its dtype.
  Tensor to_float() const;
  // I64, or I32 widened; any other dtype is an error naming the tensor and its dtype.
  std::vector<int64_t> to_int64() const;
};

SafeTensor make_f32(const std::string& name, const Tensor& t);
SafeTensor make_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);

// Bytes per element of a spec dtype, or 0 when the name is not a known dtype.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<SafeTensor> tensors;  // in data-offset order
  std::string source;               // file path (or label) used in error messages

  const SafeTensor* find(const std::string& name) const;  // nullptr when absent
  const SafeTensor& get(const std::string& name) const;   // throws "<source>: missing tensor 'x'"
};

// veto's own files (mutant sets, features, detectors) are safetensors with a metadata
// "format". A metadata value of such a file of `kind` ("mutant", "features", ...); a missing
// key is "<source>: not a veto <kind> file (metadata '<key>' is missing)".
const std::string& veto_metadata(const SafetensorsFile& file, const std::string& key, const std::string& kind);
// "<source>: not a veto <kind> file (format '<x>', expected '<format>')" unless it matches.
void check_veto_format(const SafetensorsFile& file, const std::string& format, const std::string& kind);

SafetensorsFile read_safetensors(const std::string& path);
// Parses an in-memory file; `source` names it in error messages (tests, fuzzing).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);
// Serializes in the reference layout: header padded with spaces to a multiple of 8 bytes,
// tensors laid out back to back in `file.tensors` order.
std::string serialize_safetensors(const SafetensorsFile& file);
// Atomic (temp file + rename): on failure an existing file at `path` is left untouched.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace veto
