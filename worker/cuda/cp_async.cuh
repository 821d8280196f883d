// Asynchronous global-to-shared copies (cp.async, sm_80+), shared by the
// prefill attention kernels and the int4 tensor-core GEMV (nvcc only).
#ifndef TPSERVE_WORKER_CUDA_CP_ASYNC_CUH_
#define TPSERVE_WORKER_CUDA_CP_ASYNC_CUH_

#include <cstdint>

namespace tpserve::worker::cuda {

// Shared-memory address of a generic pointer, as the asm below takes it.
__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous global-to-shared copy (sm_80+); with !valid it
// zero-fills the destination (then `src` is not read but must still be a
// valid address).
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
// The "memory" clobbers keep the compiler from moving shared-memory reads of
// the copied data above the wait.
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// 16 bytes from a shared-memory address (as SmemAddress gives), ordered after
// the cp.async waits above (both are volatile asm).
__device__ __forceinline__ uint4 LdShared16(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_CP_ASYNC_CUH_
