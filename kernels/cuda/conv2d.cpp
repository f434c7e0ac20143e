// The CUDA convolution: cuDNN cross-correlation (NCHW float, OIHW weights (O, I/G, kh, kw), groups
// and dilation set on the convolution descriptor), then one custom epilogue kernel for
// bias + residual + ReLU (conv2d_epilogue.cu). The simple, robust path:
// cudnnConvolutionBiasActivationForward's valid combinations depend on the algorithm (identity
// activation only with IMPLICIT_PRECOMP_GEMM), whereas one epilogue covers every fusion with
// whatever algorithm is fastest, for one extra pass over y.
//
// Asymmetric padding (TensorFlow "same" with stride 2 pads one more row/column after):
// cuDNN pads symmetrically only. The kernel gives cuDNN the smaller side's padding and adds the
// remainder as an explicitly zero-padded copy of the input (conv2d_pad_input.cu) in a buffer
// owned by the kernel; symmetric convolutions skip the copy. The copy only adds rows and columns,
// so it holds for any kernel size or dilation (cuDNN's output shape is checked against veto's).
//
// Numerics follow the context's Precision. fp32: FMA math only (CUDNN_FMA_MATH), no TF32 tensor
// cores, so results agree with the CPU backends to FP32 rounding. tf32: the same FP32 tensors with
// CUDNN_DEFAULT_MATH, which lets cuDNN round the inputs to TF32 on tensor cores. bf16: the input
// and the weights go to cuDNN as bfloat16 NHWC / KRSC (conv2d_bf16.cu converts the input, with
// the asymmetric padding, into the workspace; the weights are converted once per set_weights),
// tensor-op math with FP32 accumulation, and the bf16 NHWC output is read back into the FP32 NCHW
// activation by the epilogue. The algorithm is chosen once per kernel from cuDNN's heuristics
// (cudnnGetConvolutionForwardAlgorithm_v7) rather than by timing (Find): the choice is the same
// on every run, so results are reproducible run to run on one machine.
//
// A mutant's sparse delta (set_filters) uploads only the changed filters and scatters them into
// the weights in place (conv2d_set_filters.cu), in either layout.
//
// Data gradient (backward_data): cudnnConvolutionBackwardData with the forward's descriptors, so
// it is taken w.r.t. the padded input when the padding is asymmetric; a crop kernel
// (conv2d_pad_input_backward_data) then keeps the input's cells. Its algorithm is chosen the same
// way (cudnnGetConvolutionBackwardDataAlgorithm_v7), once, on the first backward_data call (an
// inference-only kernel never asks), among the deterministic FMA algorithms where there is one:
// some data-gradient algorithms add partial sums in a run-dependent order.
#include "kernels/cuda/conv2d.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "runtime/error.h"

namespace veto::cuda {
namespace {

// Largest workspace a convolution algorithm may ask for (also capped by half the free memory).
constexpr size_t kMaxWorkspaceBytes = size_t(512) << 20;

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

int to_int(int64_t v, const char* what) {
  VETO_CHECK(v >= 0 && v <= INT_MAX, "CUDA conv2d: ", what, " = ", v, " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

class CudaConv2d : public Conv2dKernel {
 public:
  CudaConv2d(std::shared_ptr<CudaContext> context, const Conv2dOp& op, const Shape& input, const ConvFusion& fusion)
      : context_(std::move(context)), op_(op), input_(input), output_(infer_shape(op, {input}, "conv2d")),
        fusion_(fusion), bf16_(context_->precision() == Precision::BF16) {
    VETO_CHECK(input_[0] > 0, "CUDA conv2d: batch must be positive, got input ", input_.str());
    context_->activate();
    try {
      create_descriptors();
      bool chosen = choose_algorithm();
      if (bf16_) {
        // bf16 where cuDNN has bf16 algorithms for this shape both ways; where it has none
        // (some depthwise or 3-channel shapes) this convolution keeps FP32 data, with the
        // tensor-op math of the descriptor (TF32).
        chosen = chosen && choose_backward_algorithm();
        backward_algorithm_chosen_ = chosen;
        if (!chosen) {
          destroy_descriptors();
          bf16_ = false;
          create_descriptors();
          chosen = choose_algorithm();
        }
      }
      VETO_CHECK(chosen, "internal: CUDA conv2d found no algorithm");
    } catch (...) {
      destroy_descriptors();
      throw;
    }
    // bf16 weights take half a float each.
    weight_ = std::make_unique<CudaBuffer>(context_, bf16_ ? (weight_count() + 1) / 2 : weight_count());
    bias_ = std::make_unique<CudaBuffer>(context_, static_cast<size_t>(op_.out_channels));
    if (needs_padding_ && !bf16_) padded_ = std::make_unique<CudaBuffer>(context_, padded_count());
  }

  ~CudaConv2d() override { destroy_descriptors(); }

  void set_weights(const float* weight, const float* bias) override {
    VETO_CHECK(weight, "CUDA conv2d: set_weights needs a weight");
    if (bf16_) {
      // OIHW FP32 to KRSC (O, kh, kw, I/G) bfloat16, the NHWC filter layout.
      std::vector<uint16_t> krsc(weight_count());
      const int64_t size = filter_layout().in_per_group * filter_layout().kernel_spatial;
      for (size_t i = 0; i < krsc.size(); ++i) {
        const int64_t at = cuda_math::filter_weight_index(filter_layout(), static_cast<int64_t>(i) / size,
                                                          static_cast<int64_t>(i) % size);
        krsc[static_cast<size_t>(at)] = cuda_math::bf16_bits_of(weight[i]);
      }
      context_->upload(krsc.data(), weight_->data(), krsc.size() * sizeof(uint16_t));
    } else {
      context_->upload(weight, weight_->data(), weight_count() * sizeof(float));
    }
    has_bias_ = bias != nullptr;
    if (bias) context_->upload(bias, bias_->data(), static_cast<size_t>(op_.out_channels) * sizeof(float));
    weights_set_ = true;
  }

  void set_filters(const std::vector<int64_t>& filters, const float* weight) override {
    const int64_t size = check_conv_filters(op_, filters, weight, weights_set_, "CUDA conv2d");
    if (filters.empty()) return;
    context_->activate();
    // One upload: the filter indices (int64, first: 8-byte aligned), then their values.
    const size_t count = filters.size(), index_floats = 2 * count, values = count * static_cast<size_t>(size);
    std::vector<float> staging(index_floats + values);
    std::memcpy(staging.data(), filters.data(), count * sizeof(int64_t));
    std::memcpy(staging.data() + index_floats, weight, values * sizeof(float));
    // A smaller buffer queued kernels may still read goes back to the allocator, which only
    // hands it to work queued after them.
    if (!filter_staging_ || filter_staging_->size() < staging.size())
      filter_staging_ = std::make_unique<CudaBuffer>(context_, staging.size());
    context_->upload(staging.data(), filter_staging_->data(), staging.size() * sizeof(float));
    conv2d_set_filters(context_->stream(), filter_layout(), static_cast<int64_t>(count),
                       reinterpret_cast<const int64_t*>(filter_staging_->data()),
                       filter_staging_->data() + index_floats, weight_->data());
  }

  void forward(const float* x, float* y, const float* residual) override {
    VETO_CHECK(weights_set_, "CUDA conv2d: forward before set_weights");
    VETO_CHECK(!fusion_.residual || residual, "CUDA conv2d: the kernel fuses a residual but none was given");
    context_->activate();
    const cudaStream_t stream = context_->stream();
    const float one = 1.0f, zero = 0.0f;
    const int64_t spatial = output_[2] * output_[3];
    if (bf16_) {
      // Workspace: cuDNN's, then the bf16 NHWC (padded) input, then the bf16 NHWC output.
      const size_t cudnn_bytes = aligned(workspace_bytes_), x_bytes = aligned(padded_count() * 2);
      char* workspace = static_cast<char*>(context_->workspace(cudnn_bytes + x_bytes + output_count() * 2));
      auto* x16 = reinterpret_cast<uint16_t*>(workspace + cudnn_bytes);
      auto* y16 = reinterpret_cast<uint16_t*>(workspace + cudnn_bytes + x_bytes);
      conv2d_to_bf16_nhwc(stream, pad_geometry_, input_[0], input_[1], x, x16);
      VETO_CUDNN_CHECK(cudnnConvolutionForward(context_->cudnn(), &one, x_desc_, x16, w_desc_, weight_->data(),
                                               conv_desc_, algorithm_, workspace, workspace_bytes_, &zero, y_desc_,
                                               y16));
      conv2d_epilogue_from_bf16_nhwc(stream, output_.numel(), op_.out_channels, spatial, y16,
                                     has_bias_ ? bias_->data() : nullptr, fusion_.residual ? residual : nullptr,
                                     fusion_.relu, y);
      return;
    }
    const float* conv_input = x;
    if (needs_padding_) {
      conv2d_pad_input(stream, pad_geometry_, input_[0] * input_[1], x, padded_->data());
      conv_input = padded_->data();
    }
    void* workspace = context_->workspace(workspace_bytes_);
    VETO_CUDNN_CHECK(cudnnConvolutionForward(context_->cudnn(), &one, x_desc_, conv_input, w_desc_, weight_->data(),
                                             conv_desc_, algorithm_, workspace, workspace_bytes_, &zero, y_desc_,
                                             y));
    conv2d_epilogue(stream, output_.numel(), op_.out_channels, spatial, has_bias_ ? bias_->data() : nullptr,
                    fusion_.residual ? residual : nullptr, fusion_.relu, y);
  }

  void backward_data(const float* dy, float* dx, bool accumulate) override {
    VETO_CHECK(weights_set_, "CUDA conv2d: backward_data before set_weights");
    context_->activate();
    if (!backward_algorithm_chosen_) {
      // Only FP32 data gets here (bf16 kernels chose both directions when made), and FP32 always
      // has an algorithm.
      backward_algorithm_chosen_ = choose_backward_algorithm();
      VETO_CHECK(backward_algorithm_chosen_, "internal: CUDA conv2d found no data-gradient algorithm");
    }
    const float one = 1.0f, zero = 0.0f;
    if (bf16_) {
      // Workspace: cuDNN's, then dy as bf16 NHWC, then the bf16 NHWC gradient w.r.t. the
      // padded input (cropped and widened into dx).
      const size_t cudnn_bytes = aligned(backward_workspace_bytes_), dy_bytes = aligned(output_count() * 2);
      char* workspace = static_cast<char*>(context_->workspace(cudnn_bytes + dy_bytes + padded_count() * 2));
      auto* dy16 = reinterpret_cast<uint16_t*>(workspace + cudnn_bytes);
      auto* dx16 = reinterpret_cast<uint16_t*>(workspace + cudnn_bytes + dy_bytes);
      cuda_math::PadGeometry whole;  // dy as it is: no padding
      whole.in_h = whole.out_h = output_[2];
      whole.in_w = whole.out_w = output_[3];
      conv2d_to_bf16_nhwc(context_->stream(), whole, output_[0], output_[1], dy, dy16);
      VETO_CUDNN_CHECK(cudnnConvolutionBackwardData(context_->cudnn(), &one, w_desc_, weight_->data(), y_desc_, dy16,
                                                    conv_desc_, backward_algorithm_, workspace,
                                                    backward_workspace_bytes_, &zero, x_desc_, dx16));
      conv2d_crop_from_bf16_nhwc(context_->stream(), pad_geometry_, input_[0], input_[1], dx16, dx, accumulate);
      return;
    }
    void* workspace = context_->workspace(backward_workspace_bytes_);
    // beta = 1 adds into the destination; with beta = 0 cuDNN does not read it. With asymmetric
    // padding the destination is the padded gradient (scratch, overwritten), cropped into dx.
    float* destination = needs_padding_ ? padded_->data() : dx;
    const float* beta = !needs_padding_ && accumulate ? &one : &zero;
    VETO_CUDNN_CHECK(cudnnConvolutionBackwardData(context_->cudnn(), &one, w_desc_, weight_->data(), y_desc_, dy,
                                                  conv_desc_, backward_algorithm_, workspace,
                                                  backward_workspace_bytes_, beta, x_desc_, destination));
    if (needs_padding_)
      conv2d_pad_input_backward_data(context_->stream(), pad_geometry_, input_[0] * input_[1], padded_->data(), dx,
                                     accumulate);
  }

 private:
  size_t weight_count() const {
    return static_cast<size_t>(op_.out_channels * (op_.in_channels / op_.groups) * op_.kernel_h * op_.kernel_w);
  }
  cuda_math::FilterLayout filter_layout() const {
    cuda_math::FilterLayout l;
    l.in_per_group = op_.in_channels / op_.groups;
    l.kernel_spatial = op_.kernel_h * op_.kernel_w;
    l.krsc = bf16_;
    return l;
  }
  size_t output_count() const { return static_cast<size_t>(output_.numel()); }
  size_t padded_count() const {
    return static_cast<size_t>(input_[0] * input_[1] * pad_geometry_.out_h * pad_geometry_.out_w);
  }

  void create_descriptors() {
    // Symmetric part for cuDNN, the rest as explicit padding of the input.
    const int64_t sym_h = std::min(op_.pad_top, op_.pad_bottom), sym_w = std::min(op_.pad_left, op_.pad_right);
    pad_geometry_.in_h = input_[2];
    pad_geometry_.in_w = input_[3];
    pad_geometry_.pad_top = op_.pad_top - sym_h;
    pad_geometry_.pad_left = op_.pad_left - sym_w;
    pad_geometry_.out_h = input_[2] + (op_.pad_top - sym_h) + (op_.pad_bottom - sym_h);
    pad_geometry_.out_w = input_[3] + (op_.pad_left - sym_w) + (op_.pad_right - sym_w);
    needs_padding_ = pad_geometry_.out_h != input_[2] || pad_geometry_.out_w != input_[3];

    VETO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    VETO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc_));
    VETO_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc_));
    VETO_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
    // bf16: NHWC tensors and KRSC filters (dimensions are still given in NCHW / OIHW order).
    const cudnnDataType_t type = bf16_ ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    const cudnnTensorFormat_t format = bf16_ ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    VETO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, format, type,
                                                to_int(input_[0], "batch"), to_int(input_[1], "channels"),
                                                to_int(pad_geometry_.out_h, "padded height"),
                                                to_int(pad_geometry_.out_w, "padded width")));
    // The filter's channels are those of one group; cuDNN splits x's channels by the group count.
    VETO_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc_, type, format,
                                                to_int(op_.out_channels, "out_channels"),
                                                to_int(op_.in_channels / op_.groups, "in_channels per group"),
                                                to_int(op_.kernel_h, "kernel_h"), to_int(op_.kernel_w, "kernel_w")));
    VETO_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv_desc_, to_int(sym_h, "pad_h"), to_int(sym_w, "pad_w"), to_int(op_.stride_h, "stride_h"),
        to_int(op_.stride_w, "stride_w"), to_int(op_.dilation_h, "dilation_h"), to_int(op_.dilation_w, "dilation_w"),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));  // FP32 accumulation in every precision
    VETO_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_desc_, to_int(op_.groups, "groups")));
    const Precision precision = context_->precision();
    VETO_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, precision == Precision::FP32   ? CUDNN_FMA_MATH
                                                             : precision == Precision::TF32 ? CUDNN_DEFAULT_MATH
                                                                                            : CUDNN_TENSOR_OP_MATH));
    int n = 0, c = 0, h = 0, w = 0;
    VETO_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc_, x_desc_, w_desc_, &n, &c, &h, &w));
    VETO_CHECK(n == output_[0] && c == output_[1] && h == output_[2] && w == output_[3],
               "CUDA conv2d: cuDNN output (", n, ",", c, ",", h, ",", w, ") differs from the expected ",
               output_.str(), " for input ", input_.str());
    VETO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc_, format, type, n, c, h, w));
  }

  // Whether an algorithm was found (always, in FP32 data: implicit GEMM is the fallback).
  bool choose_algorithm() {
    size_t free_bytes = 0, total_bytes = 0;
    VETO_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t limit = std::min(kMaxWorkspaceBytes, free_bytes / 2);
    int max_count = 0;
    VETO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(context_->cudnn(), &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> results(static_cast<size_t>(std::max(max_count, 1)));
    int returned = 0;
    VETO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(context_->cudnn(), x_desc_, w_desc_, conv_desc_, y_desc_,
                                                            static_cast<int>(results.size()), &returned,
                                                            results.data()));
    // Results come best first; take the first in the precision's math within the limit.
    for (int i = 0; i < returned; ++i) {
      const cudnnConvolutionFwdAlgoPerf_t& r = results[static_cast<size_t>(i)];
      if (r.status != CUDNN_STATUS_SUCCESS || !math_allowed(r.mathType)) continue;
      size_t bytes = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(context_->cudnn(), x_desc_, w_desc_, conv_desc_, y_desc_, r.algo,
                                                  &bytes) != CUDNN_STATUS_SUCCESS)
        continue;
      if (bytes > limit) continue;
      algorithm_ = r.algo;
      workspace_bytes_ = bytes;
      return true;
    }
    // Implicit GEMM supports every FP32 configuration and needs no workspace; bf16 has no such
    // guarantee (the constructor then falls back to FP32 data).
    if (bf16_) return false;
    algorithm_ = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    VETO_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(context_->cudnn(), x_desc_, w_desc_, conv_desc_,
                                                             y_desc_, algorithm_, &workspace_bytes_));
    return true;
  }

  // As choose_algorithm, for the data gradient; deterministic algorithms first.
  bool choose_backward_algorithm() {
    size_t free_bytes = 0, total_bytes = 0;
    VETO_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t limit = std::min(kMaxWorkspaceBytes, free_bytes / 2);

    int max_count = 0;
    VETO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(context_->cudnn(), &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> results(static_cast<size_t>(std::max(max_count, 1)));
    int returned = 0;
    VETO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(context_->cudnn(), w_desc_, y_desc_, conv_desc_,
                                                                 x_desc_, static_cast<int>(results.size()),
                                                                 &returned, results.data()));
    // Best first: the first usable deterministic one, else the first usable one at all.
    for (bool need_deterministic : {true, false})
      for (int i = 0; i < returned; ++i) {
        const cudnnConvolutionBwdDataAlgoPerf_t& r = results[static_cast<size_t>(i)];
        if (r.status != CUDNN_STATUS_SUCCESS || !math_allowed(r.mathType)) continue;
        if (need_deterministic && r.determinism != CUDNN_DETERMINISTIC) continue;
        size_t bytes = 0;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(context_->cudnn(), w_desc_, y_desc_, conv_desc_, x_desc_,
                                                         r.algo, &bytes) != CUDNN_STATUS_SUCCESS)
          continue;
        if (bytes > limit) continue;
        backward_algorithm_ = r.algo;
        backward_workspace_bytes_ = bytes;
        return true;
      }
    // ALGO_1 is deterministic and supports every 2-D FP32 configuration; bf16: as above.
    if (bf16_) return false;
    backward_algorithm_ = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    VETO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(context_->cudnn(), w_desc_, y_desc_, conv_desc_,
                                                                  x_desc_, backward_algorithm_,
                                                                  &backward_workspace_bytes_));
    return true;
  }

  // Whether an algorithm's math is the precision's. fp32: FMA only (before Ampere default math
  // is FMA too; from Ampere on it would allow TF32). tf32 and bf16: tensor cores or FMA, but
  // never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (FP32 data rounded to FP16).
  bool math_allowed(cudnnMathType_t math) const {
    if (context_->precision() != Precision::FP32) return math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return math == CUDNN_FMA_MATH || (context_->properties().major < 8 && math == CUDNN_DEFAULT_MATH);
  }

  void destroy_descriptors() noexcept {
    if (conv_desc_) (void)cudnnDestroyConvolutionDescriptor(conv_desc_);
    if (w_desc_) (void)cudnnDestroyFilterDescriptor(w_desc_);
    if (y_desc_) (void)cudnnDestroyTensorDescriptor(y_desc_);
    if (x_desc_) (void)cudnnDestroyTensorDescriptor(x_desc_);
    conv_desc_ = nullptr;
    w_desc_ = nullptr;
    y_desc_ = x_desc_ = nullptr;
  }

  std::shared_ptr<CudaContext> context_;
  Conv2dOp op_;
  Shape input_, output_;
  ConvFusion fusion_;
  bool bf16_;  // bfloat16 NHWC data (false in bf16 mode where cuDNN had no bf16 algorithm)

  cuda_math::PadGeometry pad_geometry_;
  bool needs_padding_ = false;
  cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  cudnnConvolutionFwdAlgo_t algorithm_ = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t workspace_bytes_ = 0;
  cudnnConvolutionBwdDataAlgo_t backward_algorithm_ = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  size_t backward_workspace_bytes_ = 0;
  bool backward_algorithm_chosen_ = false;

  // Padded-shape scratch (asymmetric padding only): the padded input within forward(), the
  // gradient w.r.t. it within backward_data(); neither keeps it past the call, and both run on
  // the one stream, so one buffer serves both.
  std::unique_ptr<CudaBuffer> weight_, bias_, padded_;
  std::unique_ptr<CudaBuffer> filter_staging_;  // set_filters' upload
  bool has_bias_ = false;
  bool weights_set_ = false;
};

}  // namespace

std::unique_ptr<Conv2dKernel> make_conv2d(std::shared_ptr<CudaContext> context, const Conv2dOp& op,
                                          const Shape& input, const ConvFusion& fusion) {
  return std::make_unique<CudaConv2d>(std::move(context), op, input, fusion);
}

}  // namespace veto::cuda
