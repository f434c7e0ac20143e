// How the backward kernels write their result: overwrite dx or add to it (`accumulate`).
// The flag is loop-invariant, so each kernel branches on it once and instantiates its loop
// for either case with a compile-time flag: a run-time branch in the inner loop would keep
// the compiler from vectorizing it, and a scratch copy would cost a pass over memory.
#pragma once

#include <type_traits>

namespace veto::cpu {

using Overwrite = std::false_type;
using Accumulate = std::true_type;

inline void store(Overwrite, float& to, float value) { to = value; }
inline void store(Accumulate, float& to, float value) { to += value; }

// Calls body(Overwrite{}) or body(Accumulate{}).
template <class Body>
void with_store(bool accumulate, Body&& body) {
  if (accumulate)
    body(Accumulate{});
  else
    body(Overwrite{});
}

}  // namespace veto::cpu
