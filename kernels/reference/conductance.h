// Reference attribution kernels: the integrated-gradients interpolation and one interval of
// layer conductance (METHOD.md §1).
#pragma once

#include <cstdint>

namespace veto::reference {

// y = baseline + alpha * (x - baseline), the order of operations Captum uses.
template <typename T>
void interpolate(int64_t count, const T* baseline, const T* x, T alpha, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = baseline[i] + alpha * (x[i] - baseline[i]);
}

// v = grad * (upper - lower) over a (channels, spatial) sample; sums[c] += sum_s v[c, s]
// (accumulated in double), map += v when map is not null.
template <typename T>
void conductance_accumulate(int64_t channels, int64_t spatial, const T* grad, const T* upper, const T* lower,
                            T* sums, T* map) {
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t s = 0; s < spatial; ++s) {
      const int64_t i = c * spatial + s;
      const T v = grad[i] * (upper[i] - lower[i]);
      sum += static_cast<double>(v);
      if (map) map[i] += v;
    }
    sums[c] += static_cast<T>(sum);
  }
}

}  // namespace veto::reference
