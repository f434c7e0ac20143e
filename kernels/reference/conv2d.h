// Reference 2-D convolution (the spec): plain loops, NCHW input, OIHW weights of shape
// (out, in/G, kh, kw) for G groups.
#pragma once

#include <cstdint>

#include "runtime/ops.h"

namespace veto::reference {

// With I = in/G input channels per group and g = o / (out/G) the group of output channel o:
// y[n,o,i,j] = bias[o] + sum_{c<I,kh,kw} x[n, g*I+c, i*sh-pt+kh*dh, j*sw-pl+kw*dw] * w[o,c,kh,kw]
template <typename T>
void conv2d_forward(const Conv2dOp& p, int64_t batch, int64_t in_h, int64_t in_w, const T* x, const T* w,
                    const T* bias, int64_t out_h, int64_t out_w, T* y) {
  const int64_t group_in = p.in_channels / p.groups, group_out = p.out_channels / p.groups;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < p.out_channels; ++o) {
      const int64_t first_in = o / group_out * group_in;
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j) {
          T acc = bias ? bias[o] : T(0);
          for (int64_t c = 0; c < group_in; ++c)
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              const int64_t ih = i * p.stride_h - p.pad_top + kh * p.dilation_h;
              if (ih < 0 || ih >= in_h) continue;
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t iw = j * p.stride_w - p.pad_left + kw * p.dilation_w;
                if (iw < 0 || iw >= in_w) continue;
                acc += x[((n * p.in_channels + first_in + c) * in_h + ih) * in_w + iw] *
                       w[((o * group_in + c) * p.kernel_h + kh) * p.kernel_w + kw];
              }
            }
          y[((n * p.out_channels + o) * out_h + i) * out_w + j] = acc;
        }
    }
}

// dx[n,g*I+c,ih,iw] = sum over the outputs o of group g that read (ih, iw) of dy[n,o,i,j] * w[o,c,kh,kw]
// (the transposed convolution; weights only, no bias).
template <typename T>
void conv2d_backward_data(const Conv2dOp& p, int64_t batch, int64_t in_h, int64_t in_w, const T* dy, const T* w,
                          int64_t out_h, int64_t out_w, T* dx) {
  const int64_t group_in = p.in_channels / p.groups, group_out = p.out_channels / p.groups;
  for (int64_t i = 0; i < batch * p.in_channels * in_h * in_w; ++i) dx[i] = T(0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < p.out_channels; ++o) {
      const int64_t first_in = o / group_out * group_in;
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j) {
          const T g = dy[((n * p.out_channels + o) * out_h + i) * out_w + j];
          for (int64_t c = 0; c < group_in; ++c)
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              const int64_t ih = i * p.stride_h - p.pad_top + kh * p.dilation_h;
              if (ih < 0 || ih >= in_h) continue;
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t iw = j * p.stride_w - p.pad_left + kw * p.dilation_w;
                if (iw < 0 || iw >= in_w) continue;
                dx[((n * p.in_channels + first_in + c) * in_h + ih) * in_w + iw] +=
                    g * w[((o * group_in + c) * p.kernel_h + kh) * p.kernel_w + kw];
              }
            }
        }
    }
}

}  // namespace veto::reference
