#include <algorithm>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {

void avg_pool_forward(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                      const float* x, int64_t out_h, int64_t out_w, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float* xp = x + nc * in_h * in_w;
    float* yp = y + nc * out_h * out_w;
    for (int64_t i = 0; i < out_h; ++i) {
      const WindowSpan rows = window_span(i, p.stride_h, p.pad_top, p.kernel_h, in_h);
      const int64_t hb = rows.begin, he = rows.end;
      for (int64_t j = 0; j < out_w; ++j) {
        const WindowSpan cols = window_span(j, p.stride_w, p.pad_left, p.kernel_w, in_w);
        const int64_t wb = cols.begin, we = cols.end;
        float sum = 0.0f;
        for (int64_t h = hb; h < he; ++h)
          for (int64_t w = wb; w < we; ++w) sum += xp[h * in_w + w];
        const int64_t divisor = p.count_include_pad ? p.kernel_h * p.kernel_w : (he - hb) * (we - wb);
        yp[i * out_w + j] = divisor > 0 ? sum / static_cast<float>(divisor) : 0.0f;
      }
    }
  }
}

// Each output's gradient is spread evenly over the input cells its mean read. One thread
// per (sample, channel) plane scatters into it, so no two threads write the same cell;
// with accumulate the contributions go straight onto dx.
void avg_pool_backward_data(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const float* dy, int64_t out_h, int64_t out_w, float* dx, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float* dyp = dy + nc * out_h * out_w;
    float* dxp = dx + nc * in_h * in_w;
    if (!accumulate) std::fill(dxp, dxp + in_h * in_w, 0.0f);
    for (int64_t i = 0; i < out_h; ++i) {
      const WindowSpan rows = window_span(i, p.stride_h, p.pad_top, p.kernel_h, in_h);
      const int64_t hb = rows.begin, he = rows.end;
      for (int64_t j = 0; j < out_w; ++j) {
        const WindowSpan cols = window_span(j, p.stride_w, p.pad_left, p.kernel_w, in_w);
        const int64_t wb = cols.begin, we = cols.end;
        const int64_t inside = std::max<int64_t>(he - hb, 0) * std::max<int64_t>(we - wb, 0);
        const int64_t divisor = p.count_include_pad ? p.kernel_h * p.kernel_w : inside;
        if (divisor == 0) continue;
        const float g = dyp[i * out_w + j] / static_cast<float>(divisor);
        for (int64_t h = hb; h < he; ++h)
#pragma omp simd
          for (int64_t w = wb; w < we; ++w) dxp[h * in_w + w] += g;
      }
    }
  }
}

}  // namespace veto::cpu
