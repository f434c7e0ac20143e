// Reference channel concatenation, one input at a time: x (N, C_part, H, W) goes to channels
// [offset, offset + C_part) of y (N, C_total, H, W).
#pragma once

#include <cstdint>

namespace veto::reference {

template <typename T>
void concat_forward(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                    int64_t total_channels, const T* x, T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < part_channels; ++c)
      for (int64_t s = 0; s < spatial; ++s)
        y[(n * total_channels + channel_offset + c) * spatial + s] = x[(n * part_channels + c) * spatial + s];
}

// The gradient of one input: its channels of dy.
template <typename T>
void concat_backward_data(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                          int64_t total_channels, const T* dy, T* dx) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < part_channels; ++c)
      for (int64_t s = 0; s < spatial; ++s)
        dx[(n * part_channels + c) * spatial + s] = dy[(n * total_channels + channel_offset + c) * spatial + s];
}

}  // namespace veto::reference
