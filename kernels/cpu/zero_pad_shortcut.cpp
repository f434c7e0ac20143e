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

// Only the subsampled pixels of the kept channels get a gradient. Each input plane is
// written by one thread: the rows and columns the forward pass skipped get 0 (overwrite)
// or stay as they are (accumulate).
void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                                     int64_t in_w, const float* dy, float* dx, bool accumulate) {
  const int64_t out_c = channels + p.pad_channels_before + p.pad_channels_after;
  const int64_t out_h = (in_h + p.stride - 1) / p.stride, out_w = (in_w + p.stride - 1) / p.stride;
  const int64_t stride = p.stride;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const int64_t n = nc / channels, c = nc % channels;
    const float* dyp = dy + (n * out_c + c + p.pad_channels_before) * out_h * out_w;
    float* dxp = dx + nc * in_h * in_w;
    if (!accumulate) std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(in_h * in_w));
    for (int64_t i = 0; i < out_h; ++i) {
      const float* from = dyp + i * out_w;
      float* to = dxp + i * stride * in_w;
      if (accumulate)
        for (int64_t j = 0; j < out_w; ++j) to[j * stride] += from[j];
      else
        for (int64_t j = 0; j < out_w; ++j) to[j * stride] = from[j];
    }
  }
}

}  // namespace veto::cpu
