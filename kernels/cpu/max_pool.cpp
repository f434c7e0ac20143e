#include <algorithm>
#include <limits>

#include "kernels/cpu/kernels.h"

namespace veto::cpu {

void max_pool_forward(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
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
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t h = hb; h < he; ++h)
          for (int64_t w = wb; w < we; ++w) m = std::max(m, xp[h * in_w + w]);
        yp[i * out_w + j] = m;
      }
    }
  }
}

// Each output's gradient goes to the first maximum of its window in row-major order (a
// later cell wins only when strictly greater), the reference's and PyTorch's rule. One
// thread per plane, as for avg_pool.
void max_pool_backward_data(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const float* x, const float* dy, int64_t out_h, int64_t out_w, float* dx,
                            bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < batch * channels; ++nc) {
    const float* xp = x + nc * in_h * in_w;
    const float* dyp = dy + nc * out_h * out_w;
    float* dxp = dx + nc * in_h * in_w;
    if (!accumulate) std::fill(dxp, dxp + in_h * in_w, 0.0f);
    for (int64_t i = 0; i < out_h; ++i) {
      const WindowSpan rows = window_span(i, p.stride_h, p.pad_top, p.kernel_h, in_h);
      const int64_t hb = rows.begin, he = rows.end;
      for (int64_t j = 0; j < out_w; ++j) {
        const WindowSpan cols = window_span(j, p.stride_w, p.pad_left, p.kernel_w, in_w);
        const int64_t wb = cols.begin, we = cols.end;
        if (hb >= he || wb >= we) continue;  // a window wholly in the padding has no input
        int64_t best = hb * in_w + wb;
        for (int64_t h = hb; h < he; ++h)
          for (int64_t w = wb; w < we; ++w)
            if (xp[best] < xp[h * in_w + w]) best = h * in_w + w;
        dxp[best] += dyp[i * out_w + j];
      }
    }
  }
}

}  // namespace veto::cpu
