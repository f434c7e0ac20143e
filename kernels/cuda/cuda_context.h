// The CUDA backend's context: one device, one non-blocking stream, the cuDNN and cuBLAS handles
// bound to that stream, a growable workspace and a caching device allocator. No globals: every
// CUDA backend owns its context, and kernels/buffers keep it alive through a shared_ptr.
//
// Everything this context launches goes to its one stream, in order. That is what makes the
// caching allocator and the shared workspace safe without events: memory handed back while
// queued work still reads it can only be reused by work queued after it on the same stream.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/backend.h"

namespace veto::cuda {

// Size-bucketed free lists of device blocks: allocate() reuses a cached block of the same
// bucket and calls cudaMalloc only when the bucket is empty. Buckets: powers of two up to
// 1 MiB, then multiples of 2 MiB. Blocks go back to cudaFree only in trim() (also tried once
// when cudaMalloc runs out of memory) and in the destructor.
class CachingAllocator {
 public:
  CachingAllocator(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  static size_t bucket_bytes(size_t bytes);

  // A block of at least `bytes` bytes; *bucket receives the size to hand back to release().
  void* allocate(size_t bytes, size_t* bucket);
  void release(void* block, size_t bucket);
  // Waits for the stream, then frees every cached (unused) block.
  void trim();

  size_t device_malloc_calls() const;
  size_t cached_bytes() const;

 private:
  void free_cached_locked();

  int device_;
  cudaStream_t stream_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;
  size_t cached_bytes_ = 0;
  size_t malloc_calls_ = 0;
};

class CudaContext {
 public:
  // Binds to `device` (an index below cudaGetDeviceCount); throws veto::Error when it cannot,
  // or when the device lacks the tensor cores tf32 and bf16 need (compute capability 8.0).
  CudaContext(int device, Precision precision);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  const cudaDeviceProp& properties() const { return properties_; }
  Precision precision() const { return precision_; }
  // The cuBLAS compute type of the precision (dense layers).
  cublasComputeType_t gemm_compute_type() const;

  // Makes this context's device current on the calling thread (every entry point calls it, so
  // contexts on different devices can be used from one thread).
  void activate() const;

  CachingAllocator& allocator() { return *allocator_; }

  // Scratch memory of at least `bytes`, valid for work queued on this stream until the next
  // call; grows on demand and never shrinks. Do not keep the pointer across calls. Growing
  // while recording fails (the recording would hold the old block).
  void* workspace(size_t bytes);
  size_t workspace_bytes() const { return workspace_bytes_; }
  // Counts the workspace's moves: a recording made at another generation is stale.
  uint64_t workspace_generation() const { return workspace_generation_; }
  bool recording() const { return recording_; }

  // Records what `work` queues on the stream into a CUDA Graph (see Backend::record); null
  // when capture fails (a library call that cannot be captured, or the workspace would grow).
  std::unique_ptr<RecordedWork> record(std::shared_ptr<CudaContext> self, const std::function<void()>& work);

  // Host <-> device copies on the stream. upload returns once the host memory may be reused;
  // download returns once the host memory holds the data.
  void upload(const void* host, void* device, size_t bytes);
  // Returns at once; page-locked `host` must stay unchanged until the stream passes the copy.
  void upload_async(const void* host, void* device, size_t bytes);
  void download(const void* device, void* host, size_t bytes);
  void synchronize();

 private:
  int device_ = 0;
  Precision precision_ = Precision::FP32;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  uint64_t workspace_generation_ = 0;
  bool recording_ = false;
  // cuBLAS's own workspace, set explicitly so that captured GEMMs never allocate.
  void* cublas_workspace_ = nullptr;
  size_t cublas_workspace_bucket_ = 0;
};

// Memory of a context that keeps the context alive, so a buffer may outlive the backend that
// made it.
class ContextBuffer : public DeviceBuffer {
 public:
  ContextBuffer(const ContextBuffer&) = delete;
  ContextBuffer& operator=(const ContextBuffer&) = delete;

 protected:
  explicit ContextBuffer(std::shared_ptr<CudaContext> context) : context_(std::move(context)) {}
  std::shared_ptr<CudaContext> context_;
};

// Page-locked host memory (cudaHostAlloc), freed when destroyed; data() is a host pointer.
class PinnedBuffer : public ContextBuffer {
 public:
  PinnedBuffer(std::shared_ptr<CudaContext> context, size_t floats);
  ~PinnedBuffer() override;
};

// Device memory, handed back to the context's caching allocator when destroyed.
class CudaBuffer : public ContextBuffer {
 public:
  CudaBuffer(std::shared_ptr<CudaContext> context, size_t floats);
  ~CudaBuffer() override;

 private:
  size_t bucket_ = 0;
};

// The device a new CUDA backend binds to: `local_rank` (the process's index among the MPI
// ranks on its machine; 0 alone) modulo the device count. Throws veto::Error when there is none.
int select_device(int local_rank);

}  // namespace veto::cuda
