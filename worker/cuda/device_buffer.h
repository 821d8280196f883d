// Owning handles on one CUDA allocation: DeviceBuffer (cudaMalloc) and
// HostBuffer (page-locked host memory, cudaMallocHost: copies from and to it
// are truly asynchronous and skip the driver's staging copy).
#ifndef TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_
#define TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "absl/status/statusor.h"
#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {
namespace internal {

inline cudaError_t DeviceAlloc(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
inline cudaError_t DeviceFree(void* p) { return cudaFree(p); }
inline cudaError_t HostAlloc(void** p, size_t bytes) { return cudaMallocHost(p, bytes); }
inline cudaError_t HostFree(void* p) { return cudaFreeHost(p); }

// Memory from `Alloc`, released with `Free` on destruction; movable, not
// copyable.
template <cudaError_t (*Alloc)(void**, size_t), cudaError_t (*Free)(void*)>
class CudaMemory {
 public:
  CudaMemory() = default;
  ~CudaMemory() { Reset(); }
  CudaMemory(CudaMemory&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  CudaMemory& operator=(CudaMemory&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  CudaMemory(const CudaMemory&) = delete;
  CudaMemory& operator=(const CudaMemory&) = delete;

  // Allocates `bytes` (0 gives an empty buffer).
  static absl::StatusOr<CudaMemory> Allocate(size_t bytes) {
    CudaMemory b;
    if (bytes == 0) return b;
    TP_CUDA_CHECK(Alloc(&b.ptr_, bytes));
    b.bytes_ = bytes;
    return b;
  }

  // Frees the memory now.
  void Reset() {
    if (ptr_ != nullptr) Free(ptr_);
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

}  // namespace internal

using DeviceBuffer = internal::CudaMemory<internal::DeviceAlloc, internal::DeviceFree>;
using HostBuffer = internal::CudaMemory<internal::HostAlloc, internal::HostFree>;

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_DEVICE_BUFFER_H_
