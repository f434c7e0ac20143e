// Shared pieces of the two host backends (CPU fast path and reference): host memory,
// transfers as memcpy.
#pragma once

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <new>

#include "runtime/backend.h"

namespace veto {

class HostBuffer : public DeviceBuffer {
 public:
  explicit HostBuffer(size_t floats) {
    size_ = floats;
    // 64-byte alignment for vector loads; at least one element so data() is never null.
    const size_t bytes = ((std::max<size_t>(floats, 1) * sizeof(float) + 63) / 64) * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
  }
  ~HostBuffer() override { std::free(data_); }
};

class HostBackend : public Backend {
 public:
  std::unique_ptr<DeviceBuffer> allocate(size_t floats) override { return std::make_unique<HostBuffer>(floats); }
  void upload(const float* host, float* device, size_t floats) override {
    if (floats) std::memcpy(device, host, floats * sizeof(float));
  }
  void download(const float* device, float* host, size_t floats) override {
    if (floats) std::memcpy(host, device, floats * sizeof(float));
  }
  void copy(const float* from, float* to, size_t floats) override {
    if (floats) std::memcpy(to, from, floats * sizeof(float));
  }
  void synchronize() override {}
  std::unique_ptr<DeviceBuffer> allocate_pinned(size_t floats) override { return allocate(floats); }
  void upload_async(const float* host, float* device, size_t floats) override { upload(host, device, floats); }
  std::unique_ptr<RecordedWork> record(const std::function<void()>& work) override;
  void set_threads(int threads) override;
};

}  // namespace veto
