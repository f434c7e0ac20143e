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
#include <memory>
#include <mutex>
#include <unordered_map>
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
  // Binds to `device` (an index below cudaGetDeviceCount); throws veto::Error when it cannot.
  explicit CudaContext(int device);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  const cudaDeviceProp& properties() const { return properties_; }

  // Makes this context's device current on the calling thread (every entry point calls it, so
  // contexts on different devices can be used from one thread).
  void activate() const;

  CachingAllocator& allocator() { return *allocator_; }

  // Scratch memory of at least `bytes`, valid for work queued on this stream until the next
  // call; grows on demand and never shrinks. Do not keep the pointer across calls.
  void* workspace(size_t bytes);
  size_t workspace_bytes() const { return workspace_bytes_; }

  // Host <-> device copies on the stream. upload returns once the host memory may be reused;
  // download returns once the host memory holds the data.
  void upload(const void* host, void* device, size_t bytes);
  void download(const void* device, void* host, size_t bytes);
  void synchronize();

 private:
  int device_ = 0;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// Device memory of a context, handed back to its caching allocator when destroyed. Holds the
// context alive so a buffer may outlive the backend that made it.
class CudaBuffer : public DeviceBuffer {
 public:
  CudaBuffer(std::shared_ptr<CudaContext> context, size_t floats);
  ~CudaBuffer() override;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

 private:
  std::shared_ptr<CudaContext> context_;
  size_t bucket_ = 0;
};

// The device a new CUDA backend binds to: `local_rank` (the process's index among the MPI
// ranks on its machine; 0 alone) modulo the device count. Throws veto::Error when there is none.
int select_device(int local_rank);

}  // namespace veto::cuda
