#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

// The reference's comparisons exactly, so NaN propagates the same way.
void clip_forward(const ClipOp& p, int64_t count, const float* x, float* y) {
  const float lo = p.min, hi = p.max;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

void clip_backward_data(const ClipOp& p, int64_t count, const float* y, const float* dy, float* dx,
                        bool accumulate) {
  const float lo = p.min, hi = p.max;
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) store(mode, dx[i], (lo < y[i] && y[i] < hi) ? dy[i] : 0.0f);
  });
}

}  // namespace veto::cpu
