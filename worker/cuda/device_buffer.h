// Owning handles on one cudaMalloc allocation (DeviceBuffer) and one page-
// locked host allocation (HostBuffer).
#ifndef TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_
#define TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "absl/status/statusor.h"
#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {

// Device memory freed on destruction; movable, not copyable.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Allocates `bytes` (0 gives an empty buffer).
  static absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) {
    DeviceBuffer b;
    if (bytes == 0) return b;
    TP_CUDA_CHECK(cudaMalloc(&b.ptr_, bytes));
    b.bytes_ = bytes;
    return b;
  }

  // Frees the memory now.
  void Reset() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

  // Typed view of the start of the buffer.
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  // Raw pointer.
  void* data() const { return ptr_; }
  // Size in bytes.
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (cudaMallocHost) freed on destruction: copies
// from and to it are truly asynchronous and skip the driver's staging copy.
class HostBuffer {
 public:
  HostBuffer() = default;
  ~HostBuffer() { Reset(); }
  HostBuffer(HostBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  // Allocates `bytes` (0 gives an empty buffer).
  static absl::StatusOr<HostBuffer> Allocate(size_t bytes) {
    HostBuffer b;
    if (bytes == 0) return b;
    TP_CUDA_CHECK(cudaMallocHost(&b.ptr_, bytes));
    b.bytes_ = bytes;
    return b;
  }

  void Reset() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_
