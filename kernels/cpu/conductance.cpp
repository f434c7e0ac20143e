// Attribution kernels: the integrated-gradients interpolation and one interval of layer
// conductance (twins in kernels/reference/conductance.h).
#include "kernels/cpu/kernels.h"

namespace veto::cpu {

// y = baseline + alpha * (x - baseline), Captum's order of operations.
void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = baseline[i] + alpha * (x[i] - baseline[i]);
}

// v = grad * (upper - lower); sums[c] += sum_s v[c, s], map += v when map is not null. One
// thread per channel, so each sums[c] has one writer; the channel's sum is accumulated in
// double (as the reference does: conductance sums many small terms over steps and pixels)
// and only then added to the float total.
void conductance_accumulate(int64_t channels, int64_t spatial, const float* grad, const float* upper,
                            const float* lower, float* sums, float* map) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    const float* g = grad + c * spatial;
    const float* u = upper + c * spatial;
    const float* l = lower + c * spatial;
    double sum = 0;
    if (map) {
      float* m = map + c * spatial;
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s < spatial; ++s) {
        const float v = g[s] * (u[s] - l[s]);
        sum += static_cast<double>(v);
        m[s] += v;
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s < spatial; ++s) sum += static_cast<double>(g[s] * (u[s] - l[s]));
    }
    sums[c] += static_cast<float>(sum);
  }
}

}  // namespace veto::cpu
