#include "kernels/cpu/kernels.h"

namespace veto::cpu {

void relu_forward(int64_t count, const float* x, float* y) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

}  // namespace veto::cpu
