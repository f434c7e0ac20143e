// Shared by the libFuzzer targets. veto::Error is the expected outcome for bad input, so
// every target catches it (and only it): any other exception escapes LLVMFuzzerTestOneInput
// and libFuzzer reports it as a crash, as it does sanitizer reports, aborts and timeouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace veto::fuzz {

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `f`, swallowing veto::Error (bad input, reported cleanly). Returns true when `f`
// finished without an error.
template <typename F>
bool expect_ok_or_error(F&& f) {
  try {
    f();
    return true;
  } catch (const Error&) {
    return false;
  }
}

// An invariant the target checks on accepted input; a violation is a finding.
#define VETO_FUZZ_ASSERT(cond)                                                               \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

}  // namespace veto::fuzz
