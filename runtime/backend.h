// The backend interface: every op's kernels on one kind of device. All pointers are device
// pointers of this backend (host memory for the CPU backends). Shapes include the batch.
// A backend that lacks an op does not compile: every kernel here is pure virtual.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/ops.h"

namespace veto {

// Memory owned by a backend (freed when the object dies).
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  float* data() const { return data_; }
  size_t size() const { return size_; }

 protected:
  float* data_ = nullptr;
  size_t size_ = 0;
};

// What a convolution step computes after the convolution itself:
// y = relu?(conv(x, w) + bias + residual?). Batch norm is folded into w and bias by the
// caller; the canonical weights stay untouched.
struct ConvFusion {
  bool relu = false;
  bool residual = false;  // add a tensor of the output's shape before the ReLU
};

// A convolution prepared for one input shape: backends pack weights and pick algorithms once.
class Conv2dKernel {
 public:
  virtual ~Conv2dKernel() = default;
  // Host pointers: OIHW weight and (out_channels) bias, bias may be null. Called once
  // after creation and again whenever the weights change (a mutant delta).
  virtual void set_weights(const float* weight, const float* bias) = 0;
  // residual is null unless the kernel was made with ConvFusion::residual.
  virtual void forward(const float* x, float* y, const float* residual) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Worker threads for host-side parallelism (0 = one per CPU core).
  virtual void set_threads(int threads) = 0;

  // Memory and transfers.
  virtual std::unique_ptr<DeviceBuffer> allocate(size_t floats) = 0;
  virtual void upload(const float* host, float* device, size_t floats) = 0;
  virtual void download(const float* device, float* host, size_t floats) = 0;
  virtual void synchronize() = 0;

  // Forward kernels.
  virtual std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input,
                                                    const ConvFusion& fusion) = 0;
  // Inference batch norm from its parameters (weight, bias, running mean and variance).
  virtual void batch_norm_forward(const BatchNormOp& op, const Shape& shape, const float* x, const float* weight,
                                  const float* bias, const float* mean, const float* var, float* y) = 0;
  virtual void relu_forward(int64_t count, const float* x, float* y) = 0;
  // y = a + b, then ReLU when relu is set.
  virtual void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) = 0;
  virtual void zero_pad_shortcut_forward(const ZeroPadShortcutOp& op, const Shape& input, const float* x,
                                         float* y) = 0;
  virtual void global_avg_pool_forward(const Shape& input, const float* x, float* y) = 0;
  virtual void avg_pool_forward(const AvgPoolOp& op, const Shape& input, const float* x, float* y) = 0;
  // x (batch, in_features), weight (out_features, in_features), bias may be null.
  virtual void dense_forward(const DenseOp& op, int64_t batch, const float* x, const float* weight,
                             const float* bias, float* y) = 0;
  virtual void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) = 0;
  virtual void max_pool_forward(const MaxPoolOp& op, const Shape& input, const float* x, float* y) = 0;
  // One input of a concatenation: x (N, C_part, H, W) into channels [channel_offset,
  // channel_offset + C_part) of y, which has `total_channels` channels.
  virtual void concat_forward(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* x,
                              float* y) = 0;
  // y[:, c] = x[:, c] * op.scale[c] + op.shift[c]; the constants live in the op (host).
  virtual void channel_affine_forward(const ChannelAffineOp& op, const Shape& shape, const float* x, float* y) = 0;
};

// "cpu" (fast kernels), "reference" (plain loops: the test oracle), "cuda", or "auto"
// (CUDA when a device is present, else CPU). Throws naming the problem otherwise.
std::unique_ptr<Backend> make_backend(const std::string& kind);
std::unique_ptr<Backend> make_best_backend();

}  // namespace veto
