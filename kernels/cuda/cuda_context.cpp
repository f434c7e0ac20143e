#include "kernels/cuda/cuda_context.h"

#include <algorithm>

#include "kernels/cuda/cuda_check.h"

// The factory (runtime/backend_factory.cpp) sees these declarations only in CUDA builds; this
// file exists only in CUDA builds, so it asks for them unconditionally to be checked against them.
#ifndef VETO_HAVE_CUDA
#define VETO_HAVE_CUDA 1
#endif
#include "runtime/backends.h"

namespace veto {

bool cuda_device_available() {
  // Never throws: no driver, a driver too old for this runtime, or no device all mean "no".
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear it so later CUDA calls do not report it again
    return false;
  }
  return count > 0;
}

namespace cuda {

// --- CachingAllocator -------------------------------------------------------------------------

size_t CachingAllocator::bucket_bytes(size_t bytes) {
  constexpr size_t kSmallest = 256;                // cudaMalloc's own alignment
  constexpr size_t kLargeThreshold = size_t(1) << 20;  // 1 MiB
  constexpr size_t kLargeGranule = size_t(2) << 20;    // 2 MiB
  if (bytes <= kSmallest) return kSmallest;
  if (bytes <= kLargeThreshold) {
    size_t b = kSmallest;
    while (b < bytes) b <<= 1;
    return b;
  }
  return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule;
}

void* CachingAllocator::allocate(size_t bytes, size_t* bucket) {
  const size_t size = bucket_bytes(bytes);
  *bucket = size;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_blocks_.find(size);
  if (it != free_blocks_.end() && !it->second.empty()) {
    void* block = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= size;
    return block;
  }
  VETO_CUDA_CHECK(cudaSetDevice(device_));
  void* block = nullptr;
  cudaError_t status = cudaMalloc(&block, size);
  if (status == cudaErrorMemoryAllocation && cached_bytes_ > 0) {
    // Out of memory with blocks cached in other buckets: give those back and try once more.
    (void)cudaGetLastError();
    free_cached_locked();
    status = cudaMalloc(&block, size);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    (void)cudaGetLastError();
    fail("CUDA device ", device_, ": cannot allocate ", size, " bytes (", cudaGetErrorString(status), "; ",
         free_bytes >> 20, " MiB free of ", total_bytes >> 20, " MiB)");
  }
  ++malloc_calls_;
  return block;
}

void CachingAllocator::release(void* block, size_t bucket) {
  if (!block) return;
  std::lock_guard<std::mutex> lock(mutex_);
  free_blocks_[bucket].push_back(block);
  cached_bytes_ += bucket;
}

void CachingAllocator::free_cached_locked() {
  // Queued work may still read blocks that were handed back: wait before freeing them.
  (void)cudaStreamSynchronize(stream_);
  for (auto& [size, blocks] : free_blocks_)
    for (void* block : blocks) (void)cudaFree(block);
  free_blocks_.clear();
  cached_bytes_ = 0;
}

void CachingAllocator::trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  VETO_CUDA_CHECK(cudaSetDevice(device_));
  free_cached_locked();
}

size_t CachingAllocator::device_malloc_calls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return malloc_calls_;
}

size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

CachingAllocator::~CachingAllocator() {
  // No throwing from a destructor: errors here (e.g. a device already lost) are ignored.
  std::lock_guard<std::mutex> lock(mutex_);
  (void)cudaSetDevice(device_);
  free_cached_locked();
}

// --- CudaContext ----------------------------------------------------------------------------

int select_device(int local_rank) {
  int count = 0;
  VETO_CUDA_CHECK(cudaGetDeviceCount(&count));
  VETO_CHECK(count > 0, "CUDA: no device is available on this machine");
  return local_rank % count;
}

namespace {
// cuBLAS's recommended workspace on Hopper (32 MiB; 4 MiB suffices before it).
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
}  // namespace

CudaContext::CudaContext(int device, Precision precision) : device_(device), precision_(precision) {
  int count = 0;
  VETO_CUDA_CHECK(cudaGetDeviceCount(&count));
  VETO_CHECK(device >= 0 && device < count, "CUDA: device ", device, " does not exist (", count,
             " device(s) available)");
  VETO_CUDA_CHECK(cudaSetDevice(device_));
  VETO_CUDA_CHECK(cudaGetDeviceProperties(&properties_, device_));
  VETO_CHECK(precision_ == Precision::FP32 || properties_.major >= 8, "precision ", precision_name(precision_),
             " needs tensor cores of compute capability 8.0 or later; device ", device_, " (", properties_.name,
             ") has ", properties_.major, ".", properties_.minor);
  try {
    // Non-blocking: our stream does not serialize with the legacy default stream of other code.
    VETO_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    VETO_CUDNN_CHECK(cudnnCreate(&cudnn_));
    VETO_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    VETO_CUBLAS_CHECK(cublasCreate(&cublas_));
    VETO_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // Default math never rounds FP32 inputs to TF32 on its own (that takes
    // CUBLAS_TF32_TENSOR_OP_MATH): the precision is chosen per GEMM by its compute type
    // (gemm_compute_type), nowhere else.
    VETO_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    allocator_ = std::make_unique<CachingAllocator>(device_, stream_);
    cublas_workspace_ = allocator_->allocate(kCublasWorkspaceBytes, &cublas_workspace_bucket_);
    VETO_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
  } catch (...) {
    if (cublas_workspace_) allocator_->release(cublas_workspace_, cublas_workspace_bucket_);
    allocator_.reset();
    if (cublas_) (void)cublasDestroy(cublas_);
    if (cudnn_) (void)cudnnDestroy(cudnn_);
    if (stream_) (void)cudaStreamDestroy(stream_);
    throw;
  }
}

CudaContext::~CudaContext() {
  (void)cudaSetDevice(device_);
  (void)cudaStreamSynchronize(stream_);
  if (workspace_) allocator_->release(workspace_, CachingAllocator::bucket_bytes(workspace_bytes_));
  allocator_->release(cublas_workspace_, cublas_workspace_bucket_);
  allocator_.reset();  // frees every block (all buffers are gone: they hold this context)
  (void)cublasDestroy(cublas_);
  (void)cudnnDestroy(cudnn_);
  (void)cudaStreamDestroy(stream_);
}

void CudaContext::activate() const { VETO_CUDA_CHECK(cudaSetDevice(device_)); }

cublasComputeType_t CudaContext::gemm_compute_type() const {
  switch (precision_) {
    case Precision::TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case Precision::BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case Precision::FP32: break;
  }
  return CUBLAS_COMPUTE_32F;
}

void* CudaContext::workspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  VETO_CHECK(!recording_, "CUDA: the workspace would grow from ", workspace_bytes_, " to ", bytes,
             " bytes while recording");
  // The old block goes back to the allocator: only work queued later on this stream can reuse
  // it, so kernels already queued with it finish first.
  size_t bucket = 0;
  void* grown = allocator_->allocate(bytes, &bucket);
  ++workspace_generation_;  // only once it has moved: a failed allocation leaves recordings valid
  if (workspace_) allocator_->release(workspace_, CachingAllocator::bucket_bytes(workspace_bytes_));
  workspace_ = grown;
  workspace_bytes_ = bucket;
  return workspace_;
}

namespace {
// Page-locked host memory is read by the DMA engine after cudaMemcpyAsync returns; pageable
// memory is staged before it returns. Tells which one `host` is.
bool is_page_locked(const void* host) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, host) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}
}  // namespace

void CudaContext::upload(const void* host, void* device, size_t bytes) {
  if (bytes == 0) return;
  activate();
  VETO_CHECK(host && device, "CUDA upload: null pointer (host ", host, ", device ", device, ")");
  VETO_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_));
  // Keep the contract "host memory may be reused on return" for page-locked memory too.
  if (is_page_locked(host)) VETO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaContext::upload_async(const void* host, void* device, size_t bytes) {
  if (bytes == 0) return;
  activate();
  VETO_CHECK(host && device, "CUDA upload: null pointer (host ", host, ", device ", device, ")");
  VETO_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_));
}

void CudaContext::download(const void* device, void* host, size_t bytes) {
  if (bytes == 0) return;
  activate();
  VETO_CHECK(host && device, "CUDA download: null pointer (device ", device, ", host ", host, ")");
  VETO_CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_));
  VETO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaContext::synchronize() {
  activate();
  VETO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// --- Recording (CUDA Graphs) ---------------------------------------------------------------------

namespace {

class CudaGraph : public RecordedWork {
 public:
  CudaGraph(std::shared_ptr<CudaContext> context, cudaGraphExec_t exec)
      : context_(std::move(context)), exec_(exec), generation_(context_->workspace_generation()) {}
  ~CudaGraph() override {
    (void)cudaSetDevice(context_->device());
    (void)cudaGraphExecDestroy(exec_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  bool replay() override {
    // The graph holds the workspace pointer of its capture: once the workspace has moved, the
    // old block may belong to someone else.
    if (context_->workspace_generation() != generation_) return false;
    context_->activate();
    VETO_CUDA_CHECK(cudaGraphLaunch(exec_, context_->stream()));
    return true;
  }

 private:
  std::shared_ptr<CudaContext> context_;
  cudaGraphExec_t exec_;
  uint64_t generation_;
};

}  // namespace

std::unique_ptr<RecordedWork> CudaContext::record(std::shared_ptr<CudaContext> self,
                                                  const std::function<void()>& work) {
  activate();
  // Thread-local mode: other threads' CUDA calls (none in veto, but a host library's) do not
  // invalidate this capture.
  if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  // Whatever `work` does, the capture ends and the flag drops: a capture left open would
  // swallow every later call on the stream.
  bool queued = true;
  recording_ = true;
  try {
    work();
  } catch (...) {
    // Nothing ran (capture only records): the caller runs the work itself, and a genuine
    // error is reported from there.
    queued = false;
  }
  recording_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  cudaGraphExec_t exec = nullptr;
  bool made = queued && ended == cudaSuccess && graph &&
              cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  if (graph) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();  // a failed capture leaves its error behind: not the caller's
  if (!made) return nullptr;
  return std::make_unique<CudaGraph>(std::move(self), exec);
}

// --- PinnedBuffer -------------------------------------------------------------------------------

PinnedBuffer::PinnedBuffer(std::shared_ptr<CudaContext> context, size_t floats)
    : ContextBuffer(std::move(context)) {
  context_->activate();
  void* host = nullptr;
  const size_t bytes = std::max<size_t>(floats, 1) * sizeof(float);
  const cudaError_t status = cudaHostAlloc(&host, bytes, cudaHostAllocDefault);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    fail("CUDA: cannot allocate ", bytes, " bytes of page-locked host memory (", cudaGetErrorString(status), ")");
  }
  data_ = static_cast<float*>(host);
  size_ = floats;
}

PinnedBuffer::~PinnedBuffer() {
  (void)cudaSetDevice(context_->device());
  // Queued copies may still read it.
  (void)cudaStreamSynchronize(context_->stream());
  (void)cudaFreeHost(data_);
}

// --- CudaBuffer -------------------------------------------------------------------------------

CudaBuffer::CudaBuffer(std::shared_ptr<CudaContext> context, size_t floats)
    : ContextBuffer(std::move(context)) {
  // A block taken while recording would be baked into the graph, and could be handed to
  // someone else once freed: recorded work must not allocate (capture then fails over to
  // running the work directly).
  VETO_CHECK(!context_->recording(), "CUDA: device memory allocated while recording");
  context_->activate();
  // At least one element so data() is never null (as HostBuffer).
  data_ = static_cast<float*>(context_->allocator().allocate(std::max<size_t>(floats, 1) * sizeof(float), &bucket_));
  size_ = floats;
}

CudaBuffer::~CudaBuffer() { context_->allocator().release(data_, bucket_); }

}  // namespace cuda
}  // namespace veto
