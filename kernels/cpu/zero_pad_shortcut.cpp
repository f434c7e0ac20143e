#include <cstring>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {

void zero_pad_shortcut_forward(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                               int64_t in_w, const float* x, float* y) {
  const int64_t out_c = channels + p.pad_channels_before + p.pad_channels_after;
  const int64_t out_h = (in_h + p.stride - 1) / p.stride, out_w = (in_w + p.stride - 1) / p.stride;
  const int64_t plane = out_h * out_w;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * out_c; ++nc) {
    const int64_t n = nc / out_c, c = nc % out_c - p.pad_channels_before;
    float* yp = y + nc * plane;
    if (c < 0 || c >= channels) {
      std::memset(yp, 0, sizeof(float) * static_cast<size_t>(plane));
      continue;
    }
    const float* xp = x + (n * channels + c) * in_h * in_w;
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) yp[i * out_w + j] = xp[i * p.stride * in_w + j * p.stride];
  }
}

}  // namespace veto::cpu
