// Reference per-channel affine map y[:, c] = x[:, c] * scale[c] + shift[c] (NCHW).
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void channel_affine_forward(int64_t batch, int64_t channels, int64_t spatial, const T* x, const T* scale,
                            const T* shift, T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        y[i] = x[i] * scale[c] + shift[c];
      }
}

template <typename T>
void channel_affine_backward_data(int64_t batch, int64_t channels, int64_t spatial, const T* dy, const T* scale,
                                  T* dx) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        dx[i] = dy[i] * scale[c];
      }
}

}  // namespace veto::reference
