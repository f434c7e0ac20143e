// Reference inference batch norm, straight from the definition.
#pragma once

#include <cmath>
#include <cstdint>

namespace veto::reference {

// y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c], NCHW.
template <typename T>
void batch_norm_forward(int64_t batch, int64_t channels, int64_t spatial, const T* x, const T* gamma,
                        const T* beta, const T* mean, const T* var, T eps, T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const T inv_std = T(1) / std::sqrt(var[c] + eps);
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        y[i] = (x[i] - mean[c]) * inv_std * gamma[c] + beta[c];
      }
    }
}

// dx = dy * gamma[c] / sqrt(var[c] + eps) (inference statistics are constants).
template <typename T>
void batch_norm_backward_data(int64_t batch, int64_t channels, int64_t spatial, const T* dy, const T* gamma,
                              const T* var, T eps, T* dx) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const T scale = T(1) / std::sqrt(var[c] + eps) * gamma[c];
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        dx[i] = dy[i] * scale;
      }
    }
}

}  // namespace veto::reference
