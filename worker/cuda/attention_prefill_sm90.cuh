// PTX wrappers of the Hopper wgmma prefill kernel (attention_prefill_sm90.cu):
// shared-memory matrix descriptors, wgmma issue / commit / wait and the
// m64n128k16 / m64n64k16 bf16 MMAs, the async-proxy fence, named barriers
// and mbarriers. Defines TP_PREFILL_WGMMA and declares these only where the
// device pass compiles sm_90a code (elsewhere the instructions do not exist).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_CUH_
#define TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_CUH_

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TP_PREFILL_WGMMA 1
#endif

#ifdef TP_PREFILL_WGMMA
namespace tpserve::worker::cuda::sm90 {

// Shared-memory matrix descriptor with 128-byte swizzle: start address,
// leading and stride byte offsets (PTX ISA, "Matrix Descriptor Format").
__device__ __forceinline__ uint64_t Desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (uint64_t{1} << 62);
}
__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async writes are generic-proxy writes; wgmma reads through the async proxy.
__device__ __forceinline__ void FenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads or writes across a wgmma
// fence or wait (it does not see that the asynchronous MMA owns them).
template <int N>
__device__ __forceinline__ void PinAccumulators(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
  }
}
template <int N>
__device__ __forceinline__ void PinAccumulators(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
  }
}

__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void MbarInit(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Spins until the mbarrier's phase of parity `parity` has completed.
__device__ __forceinline__ void MbarWait(uint32_t bar, int parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// One arrival from lane 0 of the warp, after all its lanes got here (a
// predicate, not a branch: no divergence next to the MMAs).
__device__ __forceinline__ void MbarArriveLane0(uint32_t bar, int lane) {
  __syncwarp();
  asm volatile(
      "{\n.reg .pred p;\nsetp.eq.s32 p, %1, 0;\n"
      "@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(bar),
      "r"(lane)
      : "memory");
}
// An arrival on `bar` once this thread's earlier cp.async copies have landed
// (counted against the barrier's expected arrivals).
__device__ __forceinline__ void CpAsyncMbarArrive(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

#define TP_ACC4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
// The 64 accumulator operands of an m64n128 wgmma (%0-%63) and their list.
#define TP_ACC64                                                                                    \
  TP_ACC4(0), TP_ACC4(1), TP_ACC4(2), TP_ACC4(3), TP_ACC4(4), TP_ACC4(5), TP_ACC4(6), TP_ACC4(7), \
      TP_ACC4(8), TP_ACC4(9), TP_ACC4(10), TP_ACC4(11), TP_ACC4(12), TP_ACC4(13), TP_ACC4(14), TP_ACC4(15)
#define TP_ACC64_REGS                                                                           \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "      \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "       \
  "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, "       \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
// d = (scale_d ? d : 0) + A (shared, K-major) * B (shared, K-major), m64n128k16.
__device__ __forceinline__ void WgmmaSS128(float (&d)[16][4], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      TP_ACC64_REGS
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
      : TP_ACC64
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// d += A (registers) * B (shared, MN-major), m64n128k16.
__device__ __forceinline__ void WgmmaRS128(float (&d)[16][4], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      TP_ACC64_REGS
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : TP_ACC64
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

// d += A (registers) * B (shared, MN-major), m64n64k16.
__device__ __forceinline__ void WgmmaRS64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "
      "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : TP_ACC4(0), TP_ACC4(1),
        TP_ACC4(2), TP_ACC4(3),
        TP_ACC4(4), TP_ACC4(5),
        TP_ACC4(6), TP_ACC4(7)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}
#undef TP_ACC4
#undef TP_ACC64
#undef TP_ACC64_REGS

template <int D>
__device__ __forceinline__ void WgmmaPV(float (&o)[D / 8][4], const uint32_t (&a)[4], uint64_t desc_v) {
  if constexpr (D == 128) {
    WgmmaRS128(o, a, desc_v);
  } else {
    WgmmaRS64(o, a, desc_v);
  }
}

}  // namespace tpserve::worker::cuda::sm90
#endif  // TP_PREFILL_WGMMA

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_CUH_
