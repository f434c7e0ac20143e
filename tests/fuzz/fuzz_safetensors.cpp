// parse_safetensors on arbitrary bytes. Accepted files must also convert (to_float /
// to_int64 for their dtypes) and survive a serialize -> parse round trip unchanged.
#include "runtime/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

namespace {

bool same(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const SafeTensor &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafetensorsFile file;
  if (!fuzz::expect_ok_or_error([&] { file = parse_safetensors(fuzz::as_string(data, size), "fuzz.safetensors"); }))
    return 0;
  for (const SafeTensor& t : file.tensors) {
    if (t.dtype == "F32") {
      const Tensor values = t.to_float();
      VETO_FUZZ_ASSERT(static_cast<size_t>(values.numel()) * 4 == t.bytes.size());
    } else if (t.dtype == "I64" || t.dtype == "I32") {
      const std::vector<int64_t> values = t.to_int64();
      VETO_FUZZ_ASSERT(values.size() * safetensors_dtype_size(t.dtype) == t.bytes.size());
    } else {
      // Other dtypes are kept as raw bytes; asking for floats is a clean error.
      VETO_FUZZ_ASSERT(!fuzz::expect_ok_or_error([&] { t.to_float(); }));
    }
  }
  // Whatever the reader accepts, the writer writes back and the reader reads the same.
  const std::string again = serialize_safetensors(file);
  VETO_FUZZ_ASSERT(same(parse_safetensors(again, "fuzz.safetensors"), file));
  return 0;
}
