#include <algorithm>
#include <cstring>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {

// One output row per iteration: all `value` when its channel or row is padding, else the
// input row between runs of `value`.
void pad_forward(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* x,
                 float* y) {
  const int64_t out_c = channels + p.before[0] + p.after[0];
  const int64_t out_h = in_h + p.before[1] + p.after[1], out_w = in_w + p.before[2] + p.after[2];
  const int64_t rows = batch * out_c * out_h;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r % out_h - p.before[1], c = (r / out_h) % out_c - p.before[0], n = r / (out_h * out_c);
    float* to = y + r * out_w;
    if (c < 0 || c >= channels || h < 0 || h >= in_h) {
      std::fill_n(to, out_w, p.value);
      continue;
    }
    std::fill_n(to, p.before[2], p.value);
    std::memcpy(to + p.before[2], x + ((n * channels + c) * in_h + h) * in_w,
                sizeof(float) * static_cast<size_t>(in_w));
    std::fill_n(to + p.before[2] + in_w, p.after[2], p.value);
  }
}

// dx is the interior of dy: one contiguous run of in_w per input row.
void pad_backward_data(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* dy,
                       float* dx, bool accumulate) {
  const int64_t out_c = channels + p.before[0] + p.after[0];
  const int64_t out_h = in_h + p.before[1] + p.after[1], out_w = in_w + p.before[2] + p.after[2];
  const int64_t rows = batch * channels * in_h;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r % in_h, c = (r / in_h) % channels, n = r / (in_h * channels);
    const float* from = dy + ((n * out_c + c + p.before[0]) * out_h + h + p.before[1]) * out_w + p.before[2];
    float* to = dx + r * in_w;
    if (accumulate)
      for (int64_t w = 0; w < in_w; ++w) to[w] += from[w];
    else
      std::memcpy(to, from, sizeof(float) * static_cast<size_t>(in_w));
  }
}

}  // namespace veto::cpu
