// Fast CPU convolution on oneDNN. Why this shape (numbers in the commit that added it, from
// a study on ResNet-20 CIFAR shapes, 2 threads): with plain NCHW memory descriptors oneDNN
// picks "x64:gemm:jit" (im2col + sgemm, 11-76 GFLOP/s); with format_tag::any it picks its
// direct "jit:avx2" kernels on nChw8c (75-146 GFLOP/s). Reordering NCHW -> nChw8c -> NCHW
// around every call adds 15-30% to the network's convolution time, yet NCHW in/out through
// the blocked primitive is still 2.7-3.1x faster than the plain-NCHW primitive.
#include "kernels/cpu/conv2d.h"

#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>
#include <string>

#include "runtime/error.h"

namespace veto::cpu {
namespace {

using dnnl::memory;
using tag = memory::format_tag;

std::string describe(const Conv2dOp& p, const Shape& input, const ConvFusion& f) {
  std::ostringstream os;
  os << "conv2d " << p.in_channels << "->" << p.out_channels << " " << p.kernel_h << "x" << p.kernel_w
     << " stride " << p.stride_h << "x" << p.stride_w << " pad (t" << p.pad_top << ",l" << p.pad_left << ",b"
     << p.pad_bottom << ",r" << p.pad_right << ") input " << input.str() << (f.relu ? " +relu" : "")
     << (f.residual ? " +residual" : "");
  return os.str();
}

class OneDnnConv2d final : public Conv2dKernel {
 public:
  OneDnnConv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion)
      : fusion_(fusion), what_(describe(op, input, fusion)) {
    VETO_CHECK(input.rank() == 4, what_, ": expected an (N,C,H,W) input");
    VETO_CHECK(input[0] > 0 && input[2] > 0 && input[3] > 0, what_, ": empty input");
    VETO_CHECK(op.in_channels > 0 && op.out_channels > 0 && op.kernel_h > 0 && op.kernel_w > 0, what_,
               ": channels and kernel sizes must be positive");
    VETO_CHECK(op.pad_top >= 0 && op.pad_left >= 0 && op.pad_bottom >= 0 && op.pad_right >= 0, what_,
               ": negative padding");
    output_ = infer_shape(OpParams(op), {input}, "conv2d");  // checks channels, stride, window fit
    input_floats_ = input.numel();
    output_floats_ = output_.numel();
    out_channels_ = op.out_channels;
    try {
      build(op, input);
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN could not build the convolution: ", e.what(), " (status ", static_cast<int>(e.status),
           ")");
    }
  }

  void set_weights(const float* weight, const float* bias) override {
    VETO_CHECK(weight != nullptr, what_, ": set_weights without weights");
    try {
      user_weights_.set_data_handle(const_cast<float*>(weight));  // only read by the reorder
      weights_reorder_.execute(stream_, user_weights_, weights_);
      float* b = static_cast<float*>(bias_.get_data_handle());
      if (bias)
        std::memcpy(b, bias, static_cast<size_t>(out_channels_) * sizeof(float));
      else
        std::memset(b, 0, static_cast<size_t>(out_channels_) * sizeof(float));
      stream_.wait();
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN weight reorder failed: ", e.what());
    }
    has_weights_ = true;
  }

  void forward(const float* x, float* y, const float* residual) override {
    VETO_CHECK(has_weights_, what_, ": forward before set_weights");
    VETO_CHECK(x != nullptr && y != nullptr, what_, ": null input or output");
    VETO_CHECK(fusion_.residual == (residual != nullptr), what_,
               fusion_.residual ? ": made with a residual but got none" : ": got a residual it was not made for");
    VETO_CHECK(y + output_floats_ <= x || x + input_floats_ <= y, what_, ": output overlaps the input");
    try {
      user_src_.set_data_handle(const_cast<float*>(x));  // only read
      user_dst_.set_data_handle(y);
      if (src_reorder_) src_reorder_.execute(stream_, user_src_, src_);
      if (residual) {
        // The sum post-op adds what dst holds before the convolution writes it.
        if (dst_reorder_) {
          user_residual_.set_data_handle(const_cast<float*>(residual));
          residual_reorder_.execute(stream_, user_residual_, dst_);
        } else if (residual != y) {
          std::memmove(y, residual, static_cast<size_t>(output_floats_) * sizeof(float));
        }
      }
      conv_.execute(stream_, {{DNNL_ARG_SRC, src_reorder_ ? src_ : user_src_},
                              {DNNL_ARG_WEIGHTS, weights_},
                              {DNNL_ARG_BIAS, bias_},
                              {DNNL_ARG_DST, dst_reorder_ ? dst_ : user_dst_}});
      if (dst_reorder_) dst_reorder_.execute(stream_, dst_, user_dst_);
      stream_.wait();
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN forward failed: ", e.what());
    }
  }

  std::string implementation() const {
    return impl_ + (src_reorder_ ? " src:reorder" : " src:nchw") + (dst_reorder_ ? " dst:reorder" : " dst:nchw");
  }

 private:
  void build(const Conv2dOp& op, const Shape& input) {
    const memory::dims src_dims = input.dims, dst_dims = output_.dims;
    const memory::dims weight_dims{op.out_channels, op.in_channels, op.kernel_h, op.kernel_w};
    const memory::desc user_src_md(src_dims, memory::data_type::f32, tag::nchw);
    const memory::desc user_dst_md(dst_dims, memory::data_type::f32, tag::nchw);
    const memory::desc user_weight_md(weight_dims, memory::data_type::f32, tag::oihw);

    dnnl::post_ops post;
    if (fusion_.residual) post.append_sum(1.0f);
    if (fusion_.relu) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post);

    // Bias is always part of the primitive (zeros when the caller has none): folded batch
    // norm supplies one even for bias-free convolutions, and one primitive serves both.
    const dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        memory::desc(src_dims, memory::data_type::f32, tag::any),
        memory::desc(weight_dims, memory::data_type::f32, tag::any),
        memory::desc({op.out_channels}, memory::data_type::f32, tag::x),
        memory::desc(dst_dims, memory::data_type::f32, tag::any), {op.stride_h, op.stride_w},
        {op.pad_top, op.pad_left}, {op.pad_bottom, op.pad_right});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine_);
    impl_ = pd.impl_info_str();
    conv_ = dnnl::convolution_forward(pd);

    // User-side memories wrap caller pointers, set per call.
    user_src_ = memory(user_src_md, engine_, DNNL_MEMORY_NONE);
    user_dst_ = memory(user_dst_md, engine_, DNNL_MEMORY_NONE);
    user_residual_ = memory(user_dst_md, engine_, DNNL_MEMORY_NONE);
    user_weights_ = memory(user_weight_md, engine_, DNNL_MEMORY_NONE);

    weights_ = memory(pd.weights_desc(), engine_);
    weights_reorder_ = dnnl::reorder(user_weights_, weights_);
    bias_ = memory(pd.bias_desc(), engine_);
    if (pd.src_desc() != user_src_md) {
      src_ = memory(pd.src_desc(), engine_);
      src_reorder_ = dnnl::reorder(user_src_, src_);
    }
    if (pd.dst_desc() != user_dst_md) {
      dst_ = memory(pd.dst_desc(), engine_);
      dst_reorder_ = dnnl::reorder(dst_, user_dst_);
      if (fusion_.residual) residual_reorder_ = dnnl::reorder(user_residual_, dst_);
    }
  }

  ConvFusion fusion_;
  std::string what_, impl_;
  Shape output_;
  int64_t input_floats_ = 0, output_floats_ = 0, out_channels_ = 0;
  bool has_weights_ = false;

  // One engine and stream per kernel: creating a CPU engine is cheap, and it keeps the
  // kernel self-contained (no shared mutable state between kernels or plans).
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::convolution_forward conv_;
  memory user_src_, user_dst_, user_residual_, user_weights_;
  memory src_, dst_, weights_, bias_;  // primitive-native layouts (src_/dst_ only when they differ)
  dnnl::reorder src_reorder_, dst_reorder_, residual_reorder_, weights_reorder_;
};

}  // namespace

std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion) {
  return std::make_unique<OneDnnConv2d>(op, input, fusion);
}

std::string conv2d_implementation(const Conv2dKernel& kernel) {
  const auto* k = dynamic_cast<const OneDnnConv2d*>(&kernel);
  return k ? k->implementation() : std::string();
}

}  // namespace veto::cpu
