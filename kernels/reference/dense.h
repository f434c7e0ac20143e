// Reference fully connected layer: y[n,o] = bias[o] + sum_i x[n,i] * w[o,i].
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void dense_forward(int64_t batch, int64_t in_features, int64_t out_features, const T* x, const T* w, const T* bias,
                   T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < out_features; ++o) {
      T acc = bias ? bias[o] : T(0);
      for (int64_t i = 0; i < in_features; ++i) acc += x[n * in_features + i] * w[o * in_features + i];
      y[n * out_features + o] = acc;
    }
}

// dx[n,i] = sum_o dy[n,o] * w[o,i].
template <typename T>
void dense_backward_data(int64_t batch, int64_t in_features, int64_t out_features, const T* dy, const T* w, T* dx) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t i = 0; i < in_features; ++i) {
      T acc = T(0);
      for (int64_t o = 0; o < out_features; ++o) acc += dy[n * out_features + o] * w[o * in_features + i];
      dx[n * in_features + i] = acc;
    }
}

}  // namespace veto::reference
