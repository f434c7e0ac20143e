#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) {
  if (relu) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      const float s = a[i] + b[i];
      y[i] = s > 0.0f ? s : 0.0f;
    }
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
  }
}

void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) store(mode, dx[i], dy[i]);
  });
}

}  // namespace veto::cpu
