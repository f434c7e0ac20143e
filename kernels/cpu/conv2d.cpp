// Fast CPU convolution on oneDNN. Why this shape (numbers in the commit that added it, from
// a study on ResNet-20 CIFAR shapes, 2 threads): with plain NCHW memory descriptors oneDNN
// picks "x64:gemm:jit" (im2col + sgemm, 11-76 GFLOP/s); with format_tag::any it picks its
// direct "jit:avx2" kernels on nChw8c (75-146 GFLOP/s). Reordering NCHW -> nChw8c -> NCHW
// around every call adds 15-30% to the network's convolution time (5-15% once the batch
// is cut into cache-sized chunks, below), yet NCHW in/out through the blocked primitive is
// still about 3x faster than the plain-NCHW primitive.
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>
#include <string>
#include <vector>

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

// The batch is run in chunks so that the NCHW -> native reorder, the convolution and the
// native -> NCHW reorder of one chunk stay in cache (and the native-layout buffers stay
// small): a chunk holds about this many bytes of native input + output.
constexpr int64_t kChunkBytes = int64_t{4} << 20;

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
    const Shape output = infer_shape(OpParams(op), {input}, "conv2d");  // checks channels, stride, fit
    batch_ = input[0];
    image_in_ = input.numel() / batch_;
    image_out_ = output.numel() / batch_;
    out_channels_ = op.out_channels;
    try {
      build(op, input, output);
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN could not build the convolution: ", e.what(), " (status ", static_cast<int>(e.status),
           ")");
    }
  }

  void set_weights(const float* weight, const float* bias) override {
    VETO_CHECK(weight != nullptr, what_, ": set_weights without weights");
    try {
      user_weights_.set_data_handle(const_cast<float*>(weight));  // only read by the reorder
      for (size_t i = 0; i < weights_.size(); ++i) weights_reorders_[i].execute(stream_, user_weights_, weights_[i]);
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
    VETO_CHECK(y + batch_ * image_out_ <= x || x + batch_ * image_in_ <= y, what_, ": output overlaps the input");
    try {
      for (int64_t n = 0; n < batch_;) {
        Part& part = (batch_ - n >= parts_[0].batch) ? parts_[0] : parts_[1];
        run(part, x + n * image_in_, y + n * image_out_, residual ? residual + n * image_out_ : nullptr);
        n += part.batch;
      }
      stream_.wait();
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN forward failed: ", e.what());
    }
  }

  std::string implementation() const {
    const Part& p = parts_[0];
    std::string s = p.impl + (p.src_reorder ? " src:reorder" : " src:nchw") + (p.dst_reorder ? " dst:reorder" : " dst:nchw");
    s += " chunk " + std::to_string(p.batch);
    if (parts_.size() > 1) s += " tail " + std::to_string(parts_[1].batch) + " " + parts_[1].impl;
    return s;
  }

 private:
  // One primitive for `batch` images with its reorders; memories named user_* wrap caller
  // pointers (set per call), src/dst are the primitive's native layouts when they differ.
  struct Part {
    int64_t batch = 0;
    std::string impl;
    dnnl::convolution_forward conv;
    memory user_src, user_dst, user_residual, src, dst;
    dnnl::reorder src_reorder, dst_reorder, residual_reorder;
    size_t weights = 0;  // index into weights_
  };

  void run(Part& p, const float* x, float* y, const float* residual) {
    p.user_src.set_data_handle(const_cast<float*>(x));  // only read
    p.user_dst.set_data_handle(y);
    if (p.src_reorder) p.src_reorder.execute(stream_, p.user_src, p.src);
    if (residual) {
      // The sum post-op adds what dst holds before the convolution writes it.
      if (p.dst_reorder) {
        p.user_residual.set_data_handle(const_cast<float*>(residual));
        p.residual_reorder.execute(stream_, p.user_residual, p.dst);
      } else if (residual != y) {
        std::memmove(y, residual, static_cast<size_t>(p.batch * image_out_) * sizeof(float));
      }
    }
    p.conv.execute(stream_, {{DNNL_ARG_SRC, p.src_reorder ? p.src : p.user_src},
                             {DNNL_ARG_WEIGHTS, weights_[p.weights]},
                             {DNNL_ARG_BIAS, bias_},
                             {DNNL_ARG_DST, p.dst_reorder ? p.dst : p.user_dst}});
    if (p.dst_reorder) p.dst_reorder.execute(stream_, p.dst, p.user_dst);
  }

  void build(const Conv2dOp& op, const Shape& input, const Shape& output) {
    const memory::dims weight_dims{op.out_channels, op.in_channels, op.kernel_h, op.kernel_w};
    user_weights_ = memory({weight_dims, memory::data_type::f32, tag::oihw}, engine_, DNNL_MEMORY_NONE);
    bias_ = memory({{op.out_channels}, memory::data_type::f32, tag::x}, engine_);

    // Chunk size: native input + output bytes per image (channels padded to blocks of 8),
    // then chunks of equal size, the last one possibly smaller.
    const auto padded = [](int64_t c) { return (c + 7) / 8 * 8; };
    const int64_t image_bytes =
        (padded(op.in_channels) * input[2] * input[3] + padded(op.out_channels) * output[2] * output[3]) *
        int64_t{sizeof(float)};
    const int64_t max_chunk = std::max<int64_t>(1, kChunkBytes / image_bytes);
    const int64_t chunks = (batch_ + max_chunk - 1) / max_chunk;
    const int64_t chunk = (batch_ + chunks - 1) / chunks;
    const int64_t tail = batch_ - (chunks - 1) * chunk;  // in (0, chunk]
    parts_.reserve(2);
    parts_.push_back(make_part(op, input, output, chunk, nullptr));
    if (tail != chunk) parts_.push_back(make_part(op, input, output, tail, &parts_[0]));
  }

  Part make_part(const Conv2dOp& op, const Shape& input, const Shape& output, int64_t batch, const Part* share) {
    const memory::dims src_dims{batch, input[1], input[2], input[3]};
    const memory::dims dst_dims{batch, output[1], output[2], output[3]};
    const memory::dims weight_dims{op.out_channels, op.in_channels, op.kernel_h, op.kernel_w};
    const memory::desc user_src_md(src_dims, memory::data_type::f32, tag::nchw);
    const memory::desc user_dst_md(dst_dims, memory::data_type::f32, tag::nchw);

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
        memory::desc(weight_dims, memory::data_type::f32, tag::any), bias_.get_desc(),
        memory::desc(dst_dims, memory::data_type::f32, tag::any), {op.stride_h, op.stride_w},
        {op.pad_top, op.pad_left}, {op.pad_bottom, op.pad_right});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine_);

    Part p;
    p.batch = batch;
    p.impl = pd.impl_info_str();
    p.conv = dnnl::convolution_forward(pd);
    p.user_src = memory(user_src_md, engine_, DNNL_MEMORY_NONE);
    p.user_dst = memory(user_dst_md, engine_, DNNL_MEMORY_NONE);
    p.user_residual = memory(user_dst_md, engine_, DNNL_MEMORY_NONE);

    // Packed weights are shared between parts when the formats agree (they normally do).
    p.weights = weights_.size();
    for (size_t i = 0; i < weights_.size(); ++i)
      if (weights_[i].get_desc() == pd.weights_desc()) p.weights = i;
    if (p.weights == weights_.size()) {
      weights_.emplace_back(pd.weights_desc(), engine_);
      weights_reorders_.emplace_back(user_weights_, weights_.back());
    }

    // A smaller tail part reuses the main part's native buffers when they are big enough.
    const auto native = [&](const memory::desc& md, const memory& big) {
      if (big && md.get_size() <= big.get_desc().get_size()) return memory(md, engine_, big.get_data_handle());
      return memory(md, engine_);
    };
    if (pd.src_desc() != user_src_md) {
      p.src = native(pd.src_desc(), share ? share->src : memory());
      p.src_reorder = dnnl::reorder(p.user_src, p.src);
    }
    if (pd.dst_desc() != user_dst_md) {
      p.dst = native(pd.dst_desc(), share ? share->dst : memory());
      p.dst_reorder = dnnl::reorder(p.dst, p.user_dst);
      if (fusion_.residual) p.residual_reorder = dnnl::reorder(p.user_residual, p.dst);
    }
    return p;
  }

  ConvFusion fusion_;
  std::string what_;
  int64_t batch_ = 0, image_in_ = 0, image_out_ = 0, out_channels_ = 0;  // image_*: floats per image
  bool has_weights_ = false;

  // One engine and stream per kernel: creating a CPU engine is cheap, and it keeps the
  // kernel self-contained (no shared mutable state between kernels or plans).
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::vector<Part> parts_;  // [0]: full chunks; [1]: the smaller last chunk, if any
  memory user_weights_, bias_;
  std::vector<memory> weights_;  // packed for the primitives
  std::vector<dnnl::reorder> weights_reorders_;
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
