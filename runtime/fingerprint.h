// FNV-1a (64-bit) for the fingerprints derived files record (which model, which mutant set
// made them): it tells files apart, it does not guard against forgery.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "runtime/tensor.h"

namespace veto {

struct Fnv1a64 {
  uint64_t state = 14695981039346656037ull;
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) state = (state ^ p[i]) * 1099511628211ull;
  }
  // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
  void text(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  void shape(const Shape& s) { text(s.str()); }
  // "fnv1a64:<16 hex digits>"
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(state));
    return std::string("fnv1a64:") + buf;
  }
};

}  // namespace veto
