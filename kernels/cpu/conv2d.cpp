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
#include <initializer_list>
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
     << p.pad_bottom << ",r" << p.pad_right << ")";
  if (p.dilation_h != 1 || p.dilation_w != 1) os << " dilation " << p.dilation_h << "x" << p.dilation_w;
  if (p.groups != 1) os << " groups " << p.groups;
  os << " input " << input.str() << (f.relu ? " +relu" : "") << (f.residual ? " +residual" : "");
  return os.str();
}

// Weights as oneDNN takes them: OIHW for a dense convolution; a grouped one has a leading
// group axis, (G, O/G, I/G, kh, kw), the same bytes as veto's (O, I/G, kh, kw).
memory::dims weight_dims(const Conv2dOp& p) {
  if (p.groups == 1) return {p.out_channels, p.in_channels, p.kernel_h, p.kernel_w};
  return {p.groups, p.out_channels / p.groups, p.in_channels / p.groups, p.kernel_h, p.kernel_w};
}

// oneDNN counts the cells skipped between taps (0: dense), veto the tap spacing (1: dense).
memory::dims dilates(const Conv2dOp& p) { return {p.dilation_h - 1, p.dilation_w - 1}; }

// The batch is run in chunks so that the NCHW -> native reorder, the convolution and the
// native -> NCHW reorder of one chunk stay in cache (and the native-layout buffers stay
// small): a chunk holds about this many bytes of native input + output.
constexpr int64_t kChunkBytes = int64_t{4} << 20;

class OneDnnConv2d final : public Conv2dKernel {
 public:
  OneDnnConv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion)
      : op_(op), input_(input), fusion_(fusion), what_(describe(op, input, fusion)) {
    VETO_CHECK(input.rank() == 4, what_, ": expected an (N,C,H,W) input");
    VETO_CHECK(input[0] > 0 && input[2] > 0 && input[3] > 0, what_, ": empty input");
    VETO_CHECK(op.in_channels > 0 && op.out_channels > 0 && op.kernel_h > 0 && op.kernel_w > 0, what_,
               ": channels and kernel sizes must be positive");
    VETO_CHECK(op.pad_top >= 0 && op.pad_left >= 0 && op.pad_bottom >= 0 && op.pad_right >= 0, what_,
               ": negative padding");
    output_ = infer_shape(OpParams(op), {input}, "conv2d");  // checks channels, stride, fit
    const Shape& output = output_;
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
    // An OIHW copy: set_filters patches it and packs again.
    oihw_.assign(weight, weight + out_channels_ * (op_.in_channels / op_.groups) * op_.kernel_h * op_.kernel_w);
    try {
      pack_weights();
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

  void set_filters(const std::vector<int64_t>& filters, const float* weight) override {
    const int64_t size = check_conv_filters(op_, filters, weight, has_weights_, what_);
    for (size_t f = 0; f < filters.size(); ++f)
      std::copy(weight + static_cast<int64_t>(f) * size, weight + static_cast<int64_t>(f + 1) * size,
                oihw_.begin() + filters[f] * size);
    try {
      pack_weights();
      stream_.wait();
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN weight reorder failed: ", e.what());
    }
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

  void backward_data(const float* dy, float* dx, bool accumulate) override {
    VETO_CHECK(has_weights_, what_, ": backward_data before set_weights");
    VETO_CHECK(dy != nullptr && dx != nullptr, what_, ": null gradient");
    VETO_CHECK(dx + batch_ * image_in_ <= dy || dy + batch_ * image_out_ <= dx, what_,
               ": input gradient overlaps the output gradient");
    if (backward_parts_.empty()) build_backward();
    try {
      for (int64_t n = 0; n < batch_;) {
        BackwardPart& part = (batch_ - n >= backward_parts_[0].batch) ? backward_parts_[0] : backward_parts_[1];
        run_backward(part, dy + n * image_out_, dx + n * image_in_, accumulate);
        n += part.batch;
      }
      stream_.wait();
    } catch (const dnnl::error& e) {
      fail(what_, ": oneDNN backward_data failed: ", e.what());
    }
  }

  // oihw_ into every packed copy of the weights (the caller waits on the stream). Once
  // backward_data has been used its packed weights follow too.
  void pack_weights() {
    user_weights_.set_data_handle(oihw_.data());  // only read by the reorders
    for (size_t i = 0; i < weights_.size(); ++i) weights_reorders_[i].execute(stream_, user_weights_, weights_[i]);
    for (size_t i = 0; i < backward_weights_.size(); ++i)
      backward_weights_reorders_[i].execute(stream_, user_weights_, backward_weights_[i]);
  }

  std::string implementation() const {
    const Part& p = parts_[0];
    std::string s = p.impl + (p.src_reorder ? " src:reorder" : " src:nchw") + (p.dst_reorder ? " dst:reorder" : " dst:nchw");
    s += " chunk " + std::to_string(p.batch);
    if (parts_.size() > 1) s += " tail " + std::to_string(parts_[1].batch) + " " + parts_[1].impl;
    return s;
  }

  std::string backward_implementation() const {
    if (backward_parts_.empty()) return std::string();
    const BackwardPart& p = backward_parts_[0];
    std::string s = p.impl + (p.dy_reorder ? " diff_dst:reorder" : " diff_dst:nchw") +
                    (p.dx_reorder ? " diff_src:reorder" : " diff_src:nchw");
    s += " chunk " + std::to_string(p.batch);
    if (backward_parts_.size() > 1)
      s += " tail " + std::to_string(backward_parts_[1].batch) + " " + backward_parts_[1].impl;
    return s;
  }

 private:
  // One primitive for `batch` images with its reorders; memories named user_* wrap caller
  // pointers (set per call), src/dst are the primitive's native layouts when they differ.
  struct Part {
    int64_t batch = 0;
    std::string impl;
    dnnl::convolution_forward::primitive_desc pd;  // the hint for the backward-data primitive
    dnnl::convolution_forward conv;
    memory user_src, user_dst, user_residual, src, dst;
    dnnl::reorder src_reorder, dst_reorder, residual_reorder;
    size_t weights = 0;  // index into weights_
  };

  // The data-gradient twin of a Part, for the same chunk of images: dy NCHW -> native, the
  // transposed convolution, dx native -> NCHW (or native + NCHW -> NCHW when accumulating).
  struct BackwardPart {
    int64_t batch = 0;
    std::string impl;
    dnnl::convolution_backward_data conv;
    memory user_dy, user_dx, dy, dx;  // dx always exists: the accumulating reorder reads it
    dnnl::reorder dy_reorder, dx_reorder, dx_accumulate;
    size_t weights = 0;  // index into backward_weights_
  };

  void run_backward(BackwardPart& p, const float* dy, float* dx, bool accumulate) {
    p.user_dy.set_data_handle(const_cast<float*>(dy));  // only read
    p.user_dx.set_data_handle(dx);
    if (p.dy_reorder) p.dy_reorder.execute(stream_, p.user_dy, p.dy);
    const bool direct = !accumulate && !p.dx_reorder;  // the primitive writes NCHW dx itself
    p.conv.execute(stream_, {{DNNL_ARG_DIFF_DST, p.dy_reorder ? p.dy : p.user_dy},
                             {DNNL_ARG_WEIGHTS, backward_weights_[p.weights]},
                             {DNNL_ARG_DIFF_SRC, direct ? p.user_dx : p.dx}});
    if (accumulate)
      p.dx_accumulate.execute(stream_, p.dx, p.user_dx);
    else if (p.dx_reorder)
      p.dx_reorder.execute(stream_, p.dx, p.user_dx);
  }

  // Built on the first backward_data call, not with the forward: most users (inference,
  // mutant scoring) never call it, and this way they pay neither the JIT time of a second
  // primitive nor the memory of a second packed copy of the weights. Nothing else is kept
  // for it: the first packing reads the forward's packed weights (the caller's pointer from
  // set_weights may be gone by now), later set_weights calls refresh both copies.
  void build_backward() {
    try {
      backward_parts_.reserve(parts_.size());
      for (size_t i = 0; i < parts_.size(); ++i)
        backward_parts_.push_back(make_backward_part(parts_[i], i > 0 ? &backward_parts_[0] : nullptr));
      stream_.wait();
    } catch (const dnnl::error& e) {
      backward_parts_.clear();  // the next call tries again from scratch
      backward_weights_.clear();
      backward_weights_reorders_.clear();
      fail(what_, ": oneDNN could not build the backward-data convolution: ", e.what(), " (status ",
           static_cast<int>(e.status), ")");
    }
  }

  BackwardPart make_backward_part(const Part& forward, const BackwardPart* share) {
    const memory::dims src_dims{forward.batch, input_[1], input_[2], input_[3]};
    const memory::dims dst_dims{forward.batch, output_[1], output_[2], output_[3]};
    const memory::desc user_src_md(src_dims, memory::data_type::f32, tag::nchw);
    const memory::desc user_dst_md(dst_dims, memory::data_type::f32, tag::nchw);
    const dnnl::convolution_backward_data::desc desc(
        dnnl::algorithm::convolution_direct, memory::desc(src_dims, memory::data_type::f32, tag::any),
        memory::desc(weight_dims(op_), memory::data_type::f32, tag::any),
        memory::desc(dst_dims, memory::data_type::f32, tag::any), {op_.stride_h, op_.stride_w}, dilates(op_),
        {op_.pad_top, op_.pad_left}, {op_.pad_bottom, op_.pad_right});
    const dnnl::convolution_backward_data::primitive_desc pd(desc, engine_, forward.pd);

    BackwardPart p;
    p.batch = forward.batch;
    p.impl = pd.impl_info_str();
    p.conv = dnnl::convolution_backward_data(pd);
    p.user_dy = memory(user_dst_md, engine_, DNNL_MEMORY_NONE);
    p.user_dx = memory(user_src_md, engine_, DNNL_MEMORY_NONE);

    p.weights = backward_weights_.size();
    for (size_t i = 0; i < backward_weights_.size(); ++i)
      if (backward_weights_[i].get_desc() == pd.weights_desc()) p.weights = i;
    if (p.weights == backward_weights_.size()) {
      backward_weights_.emplace_back(pd.weights_desc(), engine_);
      backward_weights_reorders_.emplace_back(user_weights_, backward_weights_.back());
      memory& packed = weights_[forward.weights];
      dnnl::reorder(packed, backward_weights_.back()).execute(stream_, packed, backward_weights_.back());
    }

    // Native buffers borrow memory that is idle during backward_data: the main backward
    // part's (for the tail), else the forward's native buffers of the same side (the dx
    // side from the forward's src, the dy side from its dst), else their own.
    const auto native = [&](const memory::desc& md, std::initializer_list<memory> candidates) {
      for (const memory& big : candidates)
        if (big && md.get_size() <= big.get_desc().get_size()) return memory(md, engine_, big.get_data_handle());
      return memory(md, engine_);
    };
    if (pd.diff_dst_desc() != user_dst_md) {
      p.dy = native(pd.diff_dst_desc(), {share ? share->dy : memory(), forward.dst});
      p.dy_reorder = dnnl::reorder(p.user_dy, p.dy);
    }
    p.dx = native(pd.diff_src_desc(), {share ? share->dx : memory(), forward.src});
    if (pd.diff_src_desc() != user_src_md) p.dx_reorder = dnnl::reorder(p.dx, p.user_dx);
    // accumulate: a reorder with a sum post-op reads dx and adds the converted result.
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(sum);
    p.dx_accumulate = dnnl::reorder(dnnl::reorder::primitive_desc(p.dx, p.user_dx, attr));
    return p;
  }

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
    user_weights_ = memory({weight_dims(op), memory::data_type::f32, op.groups == 1 ? tag::oihw : tag::goihw},
                           engine_, DNNL_MEMORY_NONE);
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
        memory::desc(weight_dims(op), memory::data_type::f32, tag::any), bias_.get_desc(),
        memory::desc(dst_dims, memory::data_type::f32, tag::any), {op.stride_h, op.stride_w}, dilates(op),
        {op.pad_top, op.pad_left}, {op.pad_bottom, op.pad_right});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine_);

    Part p;
    p.batch = batch;
    p.impl = pd.impl_info_str();
    p.pd = pd;
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

  Conv2dOp op_;
  Shape input_, output_;
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
  std::vector<float> oihw_;  // the weights last set, patched by set_filters
  std::vector<memory> weights_;  // packed for the primitives
  std::vector<dnnl::reorder> weights_reorders_;
  // backward_data's (empty until its first call): the same for the backward-data primitives.
  std::vector<BackwardPart> backward_parts_;
  std::vector<memory> backward_weights_;
  std::vector<dnnl::reorder> backward_weights_reorders_;
};

}  // namespace

std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input, const ConvFusion& fusion) {
  return std::make_unique<OneDnnConv2d>(op, input, fusion);
}

std::string conv2d_implementation(const Conv2dKernel& kernel) {
  const auto* k = dynamic_cast<const OneDnnConv2d*>(&kernel);
  return k ? k->implementation() : std::string();
}

std::string conv2d_backward_implementation(const Conv2dKernel& kernel) {
  const auto* k = dynamic_cast<const OneDnnConv2d*>(&kernel);
  return k ? k->backward_implementation() : std::string();
}

}  // namespace veto::cpu
