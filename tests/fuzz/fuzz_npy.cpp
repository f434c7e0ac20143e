// parse_npy on arbitrary bytes; an accepted array holds exactly its shape's elements.
#include "runtime/io/npy.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Tensor t;
  if (!fuzz::expect_ok_or_error([&] { t = parse_npy(fuzz::as_string(data, size), "fuzz.npy"); })) return 0;
  VETO_FUZZ_ASSERT(t.numel() == t.shape().numel());
  VETO_FUZZ_ASSERT(static_cast<size_t>(t.numel()) * 4 <= size);
  return 0;
}
