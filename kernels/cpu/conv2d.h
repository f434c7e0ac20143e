// Fast CPU 2-D convolution: oneDNN (the library PyTorch's CPU convolutions use).
// Interface layout is dense NCHW for x, y, the residual, dy and dx (the executor's
// activation layout); weights are OIHW on the host. Inside, the kernel lets oneDNN choose
// its native layouts (nChw8c blocked on AVX2) and reorders NCHW -> blocked -> NCHW around
// each chunk of a few MB of images: measured on this machine that is about 3x faster than
// oneDNN on plain NCHW descriptors (which falls back to im2col + sgemm), reorders included.
// Weights are repacked into the primitive's format once per set_weights, never per forward.
// backward_data (the transposed convolution, fp32) runs the same way with its own oneDNN
// primitive and its own packed weights, both made on its first call, so forward-only users
// pay nothing for it; from then on every set_weights repacks both copies.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace veto::cpu {

// A convolution for one input shape (N,C,H,W) with its epilogue:
// y = relu?(conv(x, w) + bias + residual?). Throws veto::Error when the shape does not fit
// the op or oneDNN cannot build the primitive. set_weights must be called before forward.
// forward: y must not overlap x; y may be the residual pointer itself (in-place add).
// backward_data: dx must not overlap dy; with accumulate a sum post-op on the last reorder
// adds the result onto dx (no scratch copy of dx).
// Threads: oneDNN runs on the OpenMP runtime, so omp_set_num_threads governs it.
std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion);

// What oneDNN chose for a kernel made by make_conv2d, e.g. "jit:avx2 src:reorder dst:reorder"
// (for benchmark labels and diagnostics); empty for any other kernel.
std::string conv2d_implementation(const Conv2dKernel& kernel);
// The same for its backward-data primitive; empty until backward_data has been called.
std::string conv2d_backward_implementation(const Conv2dKernel& kernel);

}  // namespace veto::cpu
