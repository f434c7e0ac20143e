// Shared helpers for op tests: seeded inputs and an elementwise comparison that reports the
// worst offender, so every fast kernel is checked against its reference the same way.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace veto {

// Uniform values in [lo, hi) from a fixed seed (std::mt19937: the same on every platform;
// the values are drawn by hand so they do not depend on the library's distribution code).
inline void fill_uniform(std::vector<float>& v, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  for (float& x : v) x = lo + (hi - lo) * static_cast<float>(rng() >> 8) * (1.0f / 16777216.0f);
}

// Passes when every element satisfies |got - want| <= max(atol, rtol * |want|) and got is not
// NaN (non-finite values must match exactly). On failure, one gtest failure names `what`, the
// number of bad elements and the worst index with both values.
inline void expect_close(const float* got, const float* want, int64_t n, float rtol, float atol,
                         const std::string& what) {
  int64_t bad = 0, worst = -1;
  double worst_excess = -1;  // error / allowed error (infinite for NaN or mismatched Inf)
  for (int64_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    double excess;
    if (std::isfinite(g) && std::isfinite(w)) {
      const double err = std::fabs(g - w), allowed = std::max<double>(atol, rtol * std::fabs(w));
      if (err <= allowed) continue;
      excess = allowed > 0 ? err / allowed : HUGE_VAL;
    } else {
      if (!std::isnan(g) && g == w) continue;  // matching infinities
      excess = HUGE_VAL;
    }
    ++bad;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (bad == 0) return;
  std::ostringstream os;
  os.precision(9);
  os << what << ": " << bad << " of " << n << " elements out of tolerance (rtol " << rtol << ", atol " << atol
     << "); worst at index " << worst << ": got " << got[worst] << ", want " << want[worst] << " (|diff| "
     << std::fabs(static_cast<double>(got[worst]) - want[worst]) << ")";
  ADD_FAILURE() << os.str();
}

// A mutant-like change of whole filters (Conv2dKernel::set_filters tests): `weights` with
// filters[f] (each `filter_size` values) replaced by the f-th block of `fresh`, and the values
// they held, in the same order (what set_filters needs to undo the change).
struct FilterPatch {
  std::vector<float> patched, old_values;
};
inline FilterPatch patch_filters(const std::vector<float>& weights, int64_t filter_size,
                                 const std::vector<int64_t>& filters, const std::vector<float>& fresh) {
  FilterPatch p{weights, {}};
  for (size_t f = 0; f < filters.size(); ++f) {
    const auto from = static_cast<std::ptrdiff_t>(filters[f] * filter_size);
    p.old_values.insert(p.old_values.end(), weights.begin() + from, weights.begin() + from + filter_size);
    std::copy(fresh.begin() + static_cast<std::ptrdiff_t>(f) * filter_size,
              fresh.begin() + static_cast<std::ptrdiff_t>(f + 1) * filter_size, p.patched.begin() + from);
  }
  return p;
}

}  // namespace veto
