#include "kernels/cpu/kernels.h"
#include "kernels/cpu/store.h"

namespace veto::cpu {

void relu_forward(int64_t count, const float* x, float* y) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate) {
  with_store(accumulate, [&](auto mode) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) store(mode, dx[i], y[i] > 0.0f ? dy[i] : 0.0f);
  });
}

}  // namespace veto::cpu
