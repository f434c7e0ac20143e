// Reference global average pool: (N,C,H,W) -> (N,C).
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void global_avg_pool_forward(int64_t batch, int64_t channels, int64_t spatial, const T* x, T* y) {
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    T sum = T(0);
    for (int64_t s = 0; s < spatial; ++s) sum += x[nc * spatial + s];
    y[nc] = sum / T(spatial);
  }
}

template <typename T>
void global_avg_pool_backward_data(int64_t batch, int64_t channels, int64_t spatial, const T* dy, T* dx) {
  for (int64_t nc = 0; nc < batch * channels; ++nc)
    for (int64_t s = 0; s < spatial; ++s) dx[nc * spatial + s] = dy[nc] / T(spatial);
}

}  // namespace veto::reference
