// Device-side synchronisation of the custom all-reduce (allreduce.cu only):
// system-scope flags carrying the epoch, the one-shot sentinel, and bounded
// waits that report the rank that did not arrive.
#ifndef TPSERVE_WORKER_CUDA_ALLREDUCE_SYNC_CUH_
#define TPSERVE_WORKER_CUDA_ALLREDUCE_SYNC_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "worker/cuda/allreduce.h"

namespace tpserve::worker::cuda::allreduce_internal {

// System-scope acquire/release (sm_70+): peers write our flags over
// NVLink/PCIe, and we write theirs.
__device__ __forceinline__ uint32_t LoadAcquire(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void StoreRelease(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Flag written by rank `src`'s block `block` in phase `phase` (0: pushed
// inputs / scattered chunks, 1: gathered sums), inside the buffer `buf`.
__device__ __forceinline__ uint32_t* Flag(char* buf, int phase, int block, int src) {
  return reinterpret_cast<uint32_t*>(buf) + (phase * kMaxAllReduceBlocks + block) * kMaxAllReduceRanks + src;
}

__device__ __forceinline__ float4 Add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

constexpr uint32_t kSentinel = 0xFFFFFFFFu;

// A 16-byte load that always goes to memory (peers write it behind our back).
__device__ __forceinline__ uint4 LoadVolatile(const float4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

__device__ __forceinline__ bool HasSentinel(uint4 v) {
  return v.x == kSentinel || v.y == kSentinel || v.z == kSentinel || v.w == kSentinel;
}

// A value as pushed: a float that happens to carry the sentinel's bits (a
// NaN) becomes the canonical NaN, so a reader never waits on real data.
__device__ __forceinline__ float4 Sanitize(float4 v) {
  auto fix = [](float f) { return __float_as_uint(f) == kSentinel ? __uint_as_float(0x7FFFFFFFu) : f; };
  return make_float4(fix(v.x), fix(v.y), fix(v.z), fix(v.w));
}

__device__ __forceinline__ float4 AsFloat4(uint4 v) {
  return make_float4(__uint_as_float(v.x), __uint_as_float(v.y), __uint_as_float(v.z), __uint_as_float(v.w));
}

// The per-launch state every helper needs.
struct Ctx {
  const AllReduceGroup& g;
  uint32_t epoch;
  int slot;
  uint64_t deadline;
  volatile int* failed;  // shared
};

// Records that `src` did not arrive in time (the host reads host_error).
__device__ __forceinline__ void ReportMissing(const Ctx& c, int src) {
  if (!*c.failed) {
    *c.failed = 1;
    atomicExch(c.g.state + AllReduceState::kDead, 1u);
    *c.g.host_error = src + 1;
    __threadfence_system();
  }
}

// A peer's one-shot float4 once it has arrived (it is the sentinel until
// then); on timeout reports `src` and returns what is there.
__device__ __forceinline__ float4 AwaitOneShot(const Ctx& c, const float4* p, int src) {
  uint4 v = LoadVolatile(p);
  while (HasSentinel(v)) {
    if (*c.failed || GlobalTimerNs() > c.deadline) {
      ReportMissing(c, src);
      break;
    }
    v = LoadVolatile(p);
  }
  return AsFloat4(v);
}

// After every thread of the block has written its data: tells rank `dst`
// that this block's part of `phase` is there.
__device__ __forceinline__ void SignalRanks(const Ctx& c, int phase, bool include_self) {
  __syncthreads();
  const int dst = threadIdx.x;
  if (dst < c.g.world && (include_self || dst != c.g.rank)) {
    __threadfence_system();
    StoreRelease(Flag(c.g.buffers[dst], phase, blockIdx.x, c.g.rank), c.epoch);
  }
}

// Waits until blocks [block_lo, block_hi) of every rank (but this one unless
// `include_self`) have signalled `phase` of this epoch. On timeout records
// the missing rank for the host and returns false in every thread.
__device__ inline bool WaitRanks(const Ctx& c, int phase, int block_lo, int block_hi, bool include_self) {
  const int world = c.g.world;
  char* mine = c.g.buffers[c.g.rank];
  for (int k = threadIdx.x; k < (block_hi - block_lo) * world; k += blockDim.x) {
    const int src = k % world, block = block_lo + k / world;
    if (src == c.g.rank && !include_self) continue;
    const uint32_t* flag = Flag(mine, phase, block, src);
    // Epochs only grow (a peer may already be one call ahead); the signed
    // difference survives the 32-bit wrap.
    while (static_cast<int32_t>(LoadAcquire(flag) - c.epoch) < 0) {
      if (*c.failed || GlobalTimerNs() > c.deadline) {
        ReportMissing(c, src);
        break;
      }
    }
  }
  __syncthreads();
  return *c.failed == 0;
}

// Block `b` of `blocks` takes a contiguous share of [0, len).
__device__ __forceinline__ void BlockRange(size_t len, size_t& begin, size_t& end) {
  const size_t per = (len + gridDim.x - 1) / gridDim.x;
  begin = min(len, per * blockIdx.x);
  end = min(len, begin + per);
}

}  // namespace tpserve::worker::cuda::allreduce_internal

#endif  // TPSERVE_WORKER_CUDA_ALLREDUCE_SYNC_CUH_
