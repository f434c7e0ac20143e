// Fast CPU kernels (conv2d has its own header) (OpenMP across rows, inner loops left to the
// compiler's vectorizer). Each has a plain-loop twin in kernels/reference/ with the same name.
// The *_backward_data kernels write dx, or add to it when `accumulate` is set (no scratch
// copy); dx never overlaps their other arguments.
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::cpu {

// The input cells [begin, end) along one axis that output position `out` of a pooling
// window reads, clipped to the input (empty when the window lies wholly in the padding).
struct WindowSpan {
  int64_t begin, end;
};
inline WindowSpan window_span(int64_t out, int64_t stride, int64_t pad_before, int64_t kernel, int64_t in) {
  const int64_t start = out * stride - pad_before;
  return {start > 0 ? start : 0, start + kernel < in ? start + kernel : in};
}

void batch_norm_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, const float* weight,
                        const float* bias, const float* mean, const float* var, float eps, float* y);
void relu_forward(int64_t count, const float* x, float* y);
void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu);
void zero_pad_shortcut_forward(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                               int64_t in_w, const float* x, float* y);
void global_avg_pool_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, float* y);
void avg_pool_forward(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                      const float* x, int64_t out_h, int64_t out_w, float* y);
void dense_forward(int64_t batch, int64_t in_features, int64_t out_features, const float* x, const float* w,
                   const float* bias, float* y);
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
void max_pool_forward(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                      const float* x, int64_t out_h, int64_t out_w, float* y);
void concat_forward(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                    int64_t total_channels, const float* x, float* y);
void channel_affine_forward(int64_t batch, int64_t channels, int64_t spatial, const float* x, const float* scale,
                            const float* shift, float* y);
void clip_forward(const ClipOp& p, int64_t count, const float* x, float* y);
void slice_forward(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* x,
                   float* y);
void pad_forward(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* x,
                 float* y);

void batch_norm_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy,
                              const float* weight, const float* var, float eps, float* dx, bool accumulate);
void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate);
void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate);
void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& p, int64_t batch, int64_t channels, int64_t in_h,
                                     int64_t in_w, const float* dy, float* dx, bool accumulate);
void global_avg_pool_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy, float* dx,
                                   bool accumulate);
void avg_pool_backward_data(const AvgPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const float* dy, int64_t out_h, int64_t out_w, float* dx, bool accumulate);
void dense_backward_data(int64_t batch, int64_t in_features, int64_t out_features, const float* dy, const float* w,
                         float* dx, bool accumulate);
void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool accumulate);
void max_pool_backward_data(const MaxPoolOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                            const float* x, const float* dy, int64_t out_h, int64_t out_w, float* dx,
                            bool accumulate);
void concat_backward_data(int64_t batch, int64_t part_channels, int64_t spatial, int64_t channel_offset,
                          int64_t total_channels, const float* dy, float* dx, bool accumulate);
void channel_affine_backward_data(int64_t batch, int64_t channels, int64_t spatial, const float* dy,
                                  const float* scale, float* dx, bool accumulate);
void clip_backward_data(const ClipOp& p, int64_t count, const float* y, const float* dy, float* dx,
                        bool accumulate);
void slice_backward_data(const SliceOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                         const float* dy, float* dx, bool accumulate);
void pad_backward_data(const PadOp& p, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w, const float* dy,
                       float* dx, bool accumulate);

// Attribution kernels (kernels/cpu/conductance.cpp; twins in kernels/reference/conductance.h).
void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y);
void conductance_accumulate(int64_t channels, int64_t spatial, const float* grad, const float* upper,
                            const float* lower, float* sums, float* map);

}  // namespace veto::cpu
