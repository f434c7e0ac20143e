// The CUDA backend: cuDNN convolutions (conv2d.cpp), cuBLAS dense (dense.cu) and one custom
// kernel per remaining op (kernels/cuda/<op>.cu). Every call queues work on the context's one
// stream and returns; download() and synchronize() wait for it.
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/cuda_kernels.h"
#include "runtime/error.h"

// See cuda_context.cpp: this file exists only in CUDA builds.
#ifndef VETO_HAVE_CUDA
#define VETO_HAVE_CUDA 1
#endif
#include "runtime/backends.h"

namespace veto {
namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend(int device, Precision precision) : context_(std::make_shared<cuda::CudaContext>(device, precision)) {}

  std::string name() const override {
    return context_->precision() == Precision::FP32 ? "cuda"
                                                    : std::string("cuda ") + precision_name(context_->precision());
  }

  // A no-op on the device: kernels get their parallelism from their launch configuration, and
  // the host side only queues work on one stream (one host thread is all it needs). The count
  // is still validated so a bad value fails the same way on every backend.
  void set_threads(int threads) override {
    VETO_CHECK(threads >= 0, "thread count must be >= 0, got ", threads);
  }

  std::unique_ptr<DeviceBuffer> allocate(size_t floats) override {
    return std::make_unique<cuda::CudaBuffer>(context_, floats);
  }
  void upload(const float* host, float* device, size_t floats) override {
    context_->upload(host, device, floats * sizeof(float));
  }
  void download(const float* device, float* host, size_t floats) override {
    context_->download(device, host, floats * sizeof(float));
  }
  void copy(const float* from, float* to, size_t floats) override {
    if (floats == 0) return;
    context_->activate();
    VETO_CUDA_CHECK(
        cudaMemcpyAsync(to, from, floats * sizeof(float), cudaMemcpyDeviceToDevice, context_->stream()));
  }
  void synchronize() override { context_->synchronize(); }
  std::unique_ptr<DeviceBuffer> allocate_pinned(size_t floats) override {
    return std::make_unique<cuda::PinnedBuffer>(context_, floats);
  }
  void upload_async(const float* host, float* device, size_t floats) override {
    context_->upload_async(host, device, floats * sizeof(float));
  }
  std::unique_ptr<RecordedWork> record(const std::function<void()>& work) override {
    return context_->record(context_, work);
  }

  std::unique_ptr<Conv2dKernel> make_conv2d(const Conv2dOp& op, const Shape& input,
                                            const ConvFusion& fusion) override {
    return cuda::make_conv2d(context_, op, input, fusion);
  }

  void batch_norm_forward(const BatchNormOp& op, const Shape& s, const float* x, const float* weight,
                          const float* bias, const float* mean, const float* var, float* y) override {
    infer_shape(op, {s}, "batch_norm");  // validates rank and channels
    context_->activate();
    cuda::batch_norm_forward(context_->stream(), s[0], s[1], s[2] * s[3], x, weight, bias, mean, var, op.eps, y);
  }

  void relu_forward(int64_t count, const float* x, float* y) override {
    context_->activate();
    cuda::relu_forward(context_->stream(), count, x, y);
  }

  void add_forward(int64_t count, const float* a, const float* b, float* y, bool relu) override {
    context_->activate();
    cuda::add_forward(context_->stream(), count, a, b, y, relu);
  }

  void zero_pad_shortcut_forward(const ZeroPadShortcutOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::ZeroPadShortcutGeometry g = shortcut_geometry(op, s);
    context_->activate();
    cuda::zero_pad_shortcut_forward(context_->stream(), g, s[0], x, y);
  }

  void global_avg_pool_forward(const Shape& s, const float* x, float* y) override {
    infer_shape(GlobalAvgPoolOp{}, {s}, "global_avg_pool");
    context_->activate();
    cuda::global_avg_pool_forward(context_->stream(), s[0] * s[1], s[2] * s[3], x, y);
  }

  void avg_pool_forward(const AvgPoolOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::AvgPoolGeometry g = avg_pool_geometry(op, s);
    context_->activate();
    cuda::avg_pool_forward(context_->stream(), g, s[0] * s[1], x, y);
  }

  void max_pool_forward(const MaxPoolOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::AvgPoolGeometry g = max_pool_geometry(op, s);
    context_->activate();
    cuda::max_pool_forward(context_->stream(), g, s[0] * s[1], x, y);
  }

  // Each sample's part is one contiguous block of x landing at a pitch of total_channels
  // planes in y: a single strided copy, no kernel.
  void concat_forward(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* x,
                      float* y) override {
    const int64_t spatial = part[2] * part[3];
    const size_t width = static_cast<size_t>(part[1] * spatial) * sizeof(float);
    const size_t pitch = static_cast<size_t>(total_channels * spatial) * sizeof(float);
    if (width == 0 || part[0] == 0) return;
    context_->activate();
    VETO_CUDA_CHECK(cudaMemcpy2DAsync(y + channel_offset * spatial, pitch, x, width, width,
                                      static_cast<size_t>(part[0]), cudaMemcpyDeviceToDevice, context_->stream()));
  }

  void channel_affine_forward(const ChannelAffineOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::ChannelAffineConstants k = affine_constants(op, s);
    context_->activate();
    cuda::channel_affine_forward(context_->stream(), s[0], s[1], s[2] * s[3], k, x, y);
  }

  void clip_forward(const ClipOp& op, int64_t count, const float* x, float* y) override {
    context_->activate();
    cuda::clip_forward(context_->stream(), count, op.min, op.max, x, y);
  }

  void slice_forward(const SliceOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::SliceGeometry g = slice_geometry(op, s);
    context_->activate();
    cuda::slice_forward(context_->stream(), g, s[0], x, y);
  }

  void pad_forward(const PadOp& op, const Shape& s, const float* x, float* y) override {
    const cuda_math::PadOpGeometry g = pad_geometry(op, s);
    context_->activate();
    cuda::pad_forward(context_->stream(), g, s[0], op.value, x, y);
  }

  void dense_forward(const DenseOp& op, int64_t batch, const float* x, const float* w, const float* bias,
                     float* y) override {
    context_->activate();
    cuda::dense_forward(context_->cublas(), context_->gemm_compute_type(), context_->stream(), batch, op.in_features,
                        op.out_features, x, w, bias, y);
  }

  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) override {
    context_->activate();
    cuda::softmax_forward(context_->stream(), rows, cols, x, y);
  }

  // --- data gradients (shapes validated as in the forward) ----------------------------------

  void batch_norm_backward_data(const BatchNormOp& op, const Shape& s, const float* dy, const float* weight,
                                const float* var, float* dx, bool accumulate) override {
    infer_shape(op, {s}, "batch_norm");
    context_->activate();
    cuda::batch_norm_backward_data(context_->stream(), s[0], s[1], s[2] * s[3], dy, weight, var, op.eps, dx,
                                   accumulate);
  }

  void relu_backward_data(int64_t count, const float* y, const float* dy, float* dx, bool accumulate) override {
    context_->activate();
    cuda::relu_backward_data(context_->stream(), count, y, dy, dx, accumulate);
  }

  void add_backward_data(int64_t count, const float* dy, float* dx, bool accumulate) override {
    context_->activate();
    cuda::add_backward_data(context_->stream(), count, dy, dx, accumulate);
  }

  void zero_pad_shortcut_backward_data(const ZeroPadShortcutOp& op, const Shape& s, const float* dy, float* dx,
                                       bool accumulate) override {
    const cuda_math::ZeroPadShortcutGeometry g = shortcut_geometry(op, s);
    context_->activate();
    cuda::zero_pad_shortcut_backward_data(context_->stream(), g, s[0], dy, dx, accumulate);
  }

  void global_avg_pool_backward_data(const Shape& s, const float* dy, float* dx, bool accumulate) override {
    infer_shape(GlobalAvgPoolOp{}, {s}, "global_avg_pool");
    context_->activate();
    cuda::global_avg_pool_backward_data(context_->stream(), s[0] * s[1], s[2] * s[3], dy, dx, accumulate);
  }

  void avg_pool_backward_data(const AvgPoolOp& op, const Shape& s, const float* dy, float* dx,
                              bool accumulate) override {
    const cuda_math::AvgPoolGeometry g = avg_pool_geometry(op, s);
    context_->activate();
    cuda::avg_pool_backward_data(context_->stream(), g, s[0] * s[1], dy, dx, accumulate);
  }

  void dense_backward_data(const DenseOp& op, int64_t batch, const float* dy, const float* w, float* dx,
                           bool accumulate) override {
    context_->activate();
    cuda::dense_backward_data(context_->cublas(), context_->gemm_compute_type(), batch, op.in_features,
                              op.out_features, dy, w, dx, accumulate);
  }

  void softmax_backward_data(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx,
                             bool accumulate) override {
    context_->activate();
    cuda::softmax_backward_data(context_->stream(), rows, cols, y, dy, dx, accumulate);
  }

  void max_pool_backward_data(const MaxPoolOp& op, const Shape& s, const float* x, const float* dy, float* dx,
                              bool accumulate) override {
    const cuda_math::AvgPoolGeometry g = max_pool_geometry(op, s);
    context_->activate();
    cuda::max_pool_backward_data(context_->stream(), g, s[0] * s[1], x, dy, dx, accumulate);
  }

  // Overwriting is the forward's strided copy run backwards (dy's slice into the contiguous dx);
  // accumulating needs a kernel (concat.cu).
  void concat_backward_data(const Shape& part, int64_t channel_offset, int64_t total_channels, const float* dy,
                            float* dx, bool accumulate) override {
    const int64_t spatial = part[2] * part[3];
    if (part[0] == 0 || part[1] * spatial == 0) return;
    context_->activate();
    if (accumulate) {
      cuda_math::ConcatGeometry g;
      g.part_channels = part[1];
      g.spatial = spatial;
      g.channel_offset = channel_offset;
      g.total_channels = total_channels;
      cuda::concat_backward_data_accumulate(context_->stream(), g, part[0], dy, dx);
      return;
    }
    const size_t width = static_cast<size_t>(part[1] * spatial) * sizeof(float);
    const size_t pitch = static_cast<size_t>(total_channels * spatial) * sizeof(float);
    VETO_CUDA_CHECK(cudaMemcpy2DAsync(dx, width, dy + channel_offset * spatial, pitch, width,
                                      static_cast<size_t>(part[0]), cudaMemcpyDeviceToDevice, context_->stream()));
  }

  void channel_affine_backward_data(const ChannelAffineOp& op, const Shape& s, const float* dy, float* dx,
                                    bool accumulate) override {
    const cuda_math::ChannelAffineConstants k = affine_constants(op, s);
    context_->activate();
    cuda::channel_affine_backward_data(context_->stream(), s[0], s[1], s[2] * s[3], k, dy, dx, accumulate);
  }

  void clip_backward_data(const ClipOp& op, int64_t count, const float* y, const float* dy, float* dx,
                          bool accumulate) override {
    context_->activate();
    cuda::clip_backward_data(context_->stream(), count, op.min, op.max, y, dy, dx, accumulate);
  }

  void slice_backward_data(const SliceOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    const cuda_math::SliceGeometry g = slice_geometry(op, s);
    context_->activate();
    cuda::slice_backward_data(context_->stream(), g, s[0], dy, dx, accumulate);
  }

  void pad_backward_data(const PadOp& op, const Shape& s, const float* dy, float* dx, bool accumulate) override {
    const cuda_math::PadOpGeometry g = pad_geometry(op, s);
    context_->activate();
    cuda::pad_backward_data(context_->stream(), g, s[0], dy, dx, accumulate);
  }

  // --- attribution ---------------------------------------------------------------------------

  void interpolate(int64_t count, const float* baseline, const float* x, float alpha, float* y) override {
    context_->activate();
    cuda::interpolate(context_->stream(), count, baseline, x, alpha, y);
  }

  // One upload of the term table (group offsets, then the terms grouped by their sums in first
  // appearance order, each group in the given order) and one launch.
  void conductance_accumulate(int64_t channels, int64_t spatial, const std::vector<ConductanceTerm>& terms) override {
    if (terms.empty()) return;
    std::vector<std::vector<size_t>> groups;
    std::unordered_map<const float*, size_t> group_of;
    for (size_t t = 0; t < terms.size(); ++t) {
      const auto [it, added] = group_of.emplace(terms[t].sums, groups.size());
      if (added) groups.emplace_back();
      groups[it->second].push_back(t);
    }
    std::vector<int64_t> starts{0};
    std::vector<cuda::ConductanceTermPointers> ordered;
    for (const std::vector<size_t>& group : groups) {
      for (size_t t : group) {
        const ConductanceTerm& k = terms[t];
        ordered.push_back({k.grad, k.upper, k.lower, k.sums, k.map});
      }
      starts.push_back(static_cast<int64_t>(ordered.size()));
    }
    const size_t start_bytes = starts.size() * sizeof(int64_t);
    const size_t term_offset = (start_bytes + 15) / 16 * 16, bytes = term_offset + ordered.size() * sizeof(ordered[0]);
    std::vector<unsigned char> table(bytes);
    std::memcpy(table.data(), starts.data(), start_bytes);
    std::memcpy(table.data() + term_offset, ordered.data(), ordered.size() * sizeof(ordered[0]));
    const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    // A smaller table that queued kernels may still read goes back to the allocator, which
    // hands it only to work queued after them.
    if (!term_table_ || term_table_->size() < floats) term_table_ = allocate(floats);
    context_->activate();
    context_->upload(table.data(), term_table_->data(), bytes);
    auto* base = reinterpret_cast<unsigned char*>(term_table_->data());
    cuda::conductance_accumulate(context_->stream(), channels, spatial,
                                 reinterpret_cast<const cuda::ConductanceTermPointers*>(base + term_offset),
                                 reinterpret_cast<const int64_t*>(base), static_cast<int64_t>(groups.size()));
  }

 private:
  static cuda_math::ZeroPadShortcutGeometry shortcut_geometry(const ZeroPadShortcutOp& op, const Shape& s) {
    const Shape out = infer_shape(op, {s}, "zero_pad_shortcut");
    cuda_math::ZeroPadShortcutGeometry g;
    g.channels = s[1];
    g.in_h = s[2];
    g.in_w = s[3];
    g.out_channels = out[1];
    g.out_h = out[2];
    g.out_w = out[3];
    g.stride = op.stride;
    g.pad_channels_before = op.pad_channels_before;
    return g;
  }

  static cuda_math::SliceGeometry slice_geometry(const SliceOp& op, const Shape& s) {
    const Shape out = infer_shape(op, {s}, "slice");
    cuda_math::SliceGeometry g;
    for (int a = 0; a < 3; ++a) {
      g.in[a] = s[a + 1];
      g.out[a] = out[a + 1];
      g.start[a] = op.start[a];
      g.step[a] = op.step[a];
    }
    return g;
  }

  static cuda_math::PadOpGeometry pad_geometry(const PadOp& op, const Shape& s) {
    const Shape out = infer_shape(op, {s}, "pad");
    cuda_math::PadOpGeometry g;
    for (int a = 0; a < 3; ++a) {
      g.in[a] = s[a + 1];
      g.out[a] = out[a + 1];
      g.before[a] = op.before[a];
    }
    return g;
  }

  static cuda_math::AvgPoolGeometry avg_pool_geometry(const AvgPoolOp& op, const Shape& s) {
    const Shape out = infer_shape(op, {s}, "avg_pool");
    return pool_geometry(s, out, op.kernel_h, op.kernel_w, op.stride_h, op.stride_w, op.pad_top, op.pad_left,
                         op.count_include_pad);
  }

  // count_include_pad is irrelevant to a max pool (padded cells never win).
  static cuda_math::AvgPoolGeometry max_pool_geometry(const MaxPoolOp& op, const Shape& s) {
    const Shape out = infer_shape(op, {s}, "max_pool");
    return pool_geometry(s, out, op.kernel_h, op.kernel_w, op.stride_h, op.stride_w, op.pad_top, op.pad_left, false);
  }

  static cuda_math::ChannelAffineConstants affine_constants(const ChannelAffineOp& op, const Shape& s) {
    infer_shape(op, {s}, "channel_affine");
    VETO_CHECK(s[1] <= cuda_math::kMaxAffineChannels, "channel_affine on CUDA takes at most ",
               cuda_math::kMaxAffineChannels, " channels, got ", s[1]);
    cuda_math::ChannelAffineConstants k{};
    for (int64_t c = 0; c < s[1]; ++c) {
      k.scale[c] = op.scale[static_cast<size_t>(c)];
      k.shift[c] = op.shift[static_cast<size_t>(c)];
    }
    return k;
  }

  static cuda_math::AvgPoolGeometry pool_geometry(const Shape& in, const Shape& out, int64_t kernel_h,
                                                  int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                                                  int64_t pad_top, int64_t pad_left, bool count_include_pad) {
    cuda_math::AvgPoolGeometry g;
    g.in_h = in[2];
    g.in_w = in[3];
    g.out_h = out[2];
    g.out_w = out[3];
    g.kernel_h = kernel_h;
    g.kernel_w = kernel_w;
    g.stride_h = stride_h;
    g.stride_w = stride_w;
    g.pad_top = pad_top;
    g.pad_left = pad_left;
    g.count_include_pad = count_include_pad;
    return g;
  }

  std::shared_ptr<cuda::CudaContext> context_;
  std::unique_ptr<DeviceBuffer> term_table_;  // conductance_accumulate's terms on the device
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int local_rank, Precision precision) {
  return std::make_unique<CudaBackend>(cuda::select_device(local_rank), precision);
}

}  // namespace veto
