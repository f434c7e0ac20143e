#include <cstring>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {
namespace {

// The output position along one axis that reads input position `in`, or -1 if none does.
int64_t slice_position(int64_t in, int64_t start, int64_t step, int64_t size) {
  const int64_t d = in - start;
  if (d < 0 || d % step != 0 || d / step >= size) return -1;
  return d / step;
}

}  // namespace

// One output row per iteration; a unit step along W is one memcpy.
void slice_forward(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* x,
                   float* y) {
  const int64_t rows = batch * p.size[0] * p.size[1], out_w = p.size[2], step_w = p.step[2];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r % p.size[1], oc = (r / p.size[1]) % p.size[0], n = r / (p.size[1] * p.size[0]);
    const int64_t c = p.start[0] + oc * p.step[0], h = p.start[1] + i * p.step[1];
    const float* from = x + ((n * channels + c) * in_h + h) * in_w + p.start[2];
    float* to = y + r * out_w;
    if (step_w == 1)
      std::memcpy(to, from, sizeof(float) * static_cast<size_t>(out_w));
    else
      for (int64_t j = 0; j < out_w; ++j) to[j] = from[j * step_w];
  }
}

// One input row per iteration, so no two threads write one cell. Rows and cells the slice
// skipped get 0 (overwrite) or stay as they are (accumulate).
void slice_backward_data(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                         const float* dy, float* dx, bool accumulate) {
  const int64_t rows = batch * channels * in_h, out_w = p.size[2], start_w = p.start[2], step_w = p.step[2];
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(in_w);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r % in_h, c = (r / in_h) % channels, n = r / (in_h * channels);
    const int64_t oc = slice_position(c, p.start[0], p.step[0], p.size[0]);
    const int64_t i = slice_position(h, p.start[1], p.step[1], p.size[1]);
    float* to = dx + r * in_w;
    if (oc < 0 || i < 0) {
      if (!accumulate) std::memset(to, 0, row_bytes);
      continue;
    }
    const float* from = dy + ((n * p.size[0] + oc) * p.size[1] + i) * out_w;
    if (accumulate) {
      for (int64_t j = 0; j < out_w; ++j) to[start_w + j * step_w] += from[j];
    } else if (step_w == 1) {
      std::memset(to, 0, sizeof(float) * static_cast<size_t>(start_w));
      std::memcpy(to + start_w, from, sizeof(float) * static_cast<size_t>(out_w));
      std::memset(to + start_w + out_w, 0, sizeof(float) * static_cast<size_t>(in_w - start_w - out_w));
    } else {
      std::memset(to, 0, row_bytes);
      for (int64_t j = 0; j < out_w; ++j) to[start_w + j * step_w] = from[j];
    }
  }
}

}  // namespace veto::cpu
