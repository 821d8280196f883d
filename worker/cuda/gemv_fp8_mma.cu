#include "worker/cuda/gemv_fp8_mma.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int_mma_tile.cuh"
#include "worker/cuda/pdl.cuh"

// Why tensor cores for the FP8 GEMV: gemv.cu's kernel spends ~60
// instructions on each 16 bytes of weights (8 conversions to f16 pairs, 16
// to float, the x row's bf16 unpacked, 16 FMAs), ~50% of the issue slots at
// the rate it streams, and its 7B gate_up / down moved 3.8 / 4.1 TB/s where
// bf16's moved 4.2-4.4 (ninth session's timeline, docs/performance.md).
// Here a weight pair becomes an f16 pair with one conversion (E4M3 -> f16 is
// exact) and one mma.m16n8k16 multiplies 16 weight rows by 16 inputs: ~13
// instructions per lane's 32 bytes of weights.
//
// x is converted once per warp, after PdlWait(), into f16 in shared memory
// for the warp's share of k, at a power-of-two scale chosen from that
// share's max |x| (mapped into [2^14, 2^15)): bf16's 8 significant bits fit
// f16's 11, so every input within 2^29 of the max is exact, the rest are
// rounded at 2^-40 of the max, and nothing overflows. The products of two
// f16s are exact in fp32, so the result differs from gemv.cu's only in the
// order of the fp32 sums. Each warp's sums are scaled back (and by the
// row's FP8 scale) before the block's reduction.
//
// A tile is 16 weight rows (8 gate + 8 up rows for SiLU·mul) by 64 inputs:
// lane (g, t) (g = lane / 4, t = lane % 4) copies 16 bytes of row g and of
// row g + 8 at byte 16 t of the tile. The mma's logical k need not be the
// physical input, as long as A and B name the same one: in k-step s, lane
// t's logical inputs (2t, 2t + 1, 2t + 8, 2t + 9) are its bytes 4s .. 4s + 3,
// so each word of the copied chunk is an A pair (low half) and its partner
// (high half), and the matching x halves are 4 consecutive f16s.
namespace tpserve::worker::cuda {
namespace {

constexpr int kTileInputs = 64;
constexpr int kStages = 6;  // k tiles a warp has in flight (+1 being computed)

__device__ __forceinline__ void MmaF16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The f16 pair of E4M3 bytes (2h, 2h + 1) of a word (exact).
__device__ __forceinline__ uint32_t F16Pair(uint32_t word, int h) {
  const __half2_raw p =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(word >> (16 * h)), __NV_E4M3);
  return static_cast<uint32_t>(p.x) | static_cast<uint32_t>(p.y) << 16;
}

__device__ __forceinline__ uint32_t F16x2(float lo, float hi) {
  uint32_t d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}

// Two bf16 (a word) times `scale` as an f16 pair.
__device__ __forceinline__ uint32_t ScaledF16(uint32_t bf16x2, float scale) {
  return F16x2(__uint_as_float(bf16x2 << 16) * scale, __uint_as_float(bf16x2 & 0xFFFF0000u) * scale);
}

// Converts inputs [k0, k0 + len) of x's m <= M rows into f16 at dst
// ([m][len]), each row at the power of two that maps its max |x| into
// [2^14, 2^15); inv[r] undoes row r's. The whole warp calls it; len is a
// multiple of 64.
template <int M>
__device__ __forceinline__ void StageX(const bf16* __restrict__ x, int m, int k, int k0, int len, uint4* dst,
                                       float (&inv)[M]) {
  const int lane = threadIdx.x & 31, chunks = len / 8;
#pragma unroll
  for (int r = 0; r < M; ++r) {
    if (r >= m) break;
    const uint4* src = reinterpret_cast<const uint4*>(x + static_cast<size_t>(r) * k + k0);
    uint32_t most = 0;  // per 16-bit half: the largest |bf16| bit pattern (monotonic in |x|)
    for (int i = lane; i < chunks; i += 32) {
      const uint4 v = __ldg(src + i);
      most = __vmaxu2(most, __vmaxu2(__vmaxu2(v.x & 0x7FFF7FFFu, v.y & 0x7FFF7FFFu),
                                     __vmaxu2(v.z & 0x7FFF7FFFu, v.w & 0x7FFF7FFFu)));
    }
    most = __reduce_max_sync(0xffffffffu, max(most & 0xFFFFu, most >> 16));
    // max |x| = 2^(e - 127) (1 + f): scale 2^(14 - (e - 127)) as float bits
    // 268 - e, kept normal with a normal inverse.
    const int bits = min(max(268 - static_cast<int>(most >> 7), 1), 253);
    const float scale = __uint_as_float(static_cast<uint32_t>(bits) << 23);
    inv[r] = __uint_as_float(static_cast<uint32_t>(254 - bits) << 23);
    for (int i = lane; i < chunks; i += 32) {
      const uint4 v = __ldg(src + i);
      dst[r * chunks + i] =
          make_uint4(ScaledF16(v.x, scale), ScaledF16(v.y, scale), ScaledF16(v.z, scale), ScaledF16(v.w, scale));
    }
  }
}

// Dynamic shared memory: [W][S][2 rows][32 lanes] uint4 of weight stages,
// then x as f16, [m][k] split by warp (warp i's share at m * its first
// input). W warps split the k tiles; a block is one row tile. M = m (1 or 2).
template <int M, bool kSilu, int W>
__global__ void __launch_bounds__(W * 32)
    GemvFp8MmaKernel(const bf16* __restrict__ x, const __nv_fp8_e4m3* __restrict__ w, const float* __restrict__ scale,
                     const bf16* __restrict__ bias, void* __restrict__ out, bool out_fp32, int n, int k, int m) {
  constexpr int S = kStages;
  extern __shared__ uint4 smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int tiles = k / kTileInputs, begin = warp * tiles / W, end = (warp + 1) * tiles / W;
  int ra, rb;
  TileRows<kSilu>(n, static_cast<int>(blockIdx.x), g, ra, rb);
  const uint4* pa = reinterpret_cast<const uint4*>(w + static_cast<size_t>(ra) * k + begin * kTileInputs) + t;
  const uint4* pb = reinterpret_cast<const uint4*>(w + static_cast<size_t>(rb) * k + begin * kTileInputs) + t;
  const uint32_t mine = SmemAddress(smem + warp * S * 64 + lane);
  int next = begin;
  // Requests k tile `next` into stage u; always commits a group (empty past
  // the end) so that wait_group counts tiles.
  auto issue = [&](int u) {
    if (next < end) {
      CpAsync16(mine + u * 1024, pa);
      CpAsync16(mine + u * 1024 + 512, pb);
      pa += kTileInputs / 16;
      pb += kTileInputs / 16;
    }
    ++next;
    CpAsyncCommit();
  };
#pragma unroll
  for (int u = 0; u < S - 1; ++u) issue(u);
  const float sa = __ldg(scale + ra), sb = __ldg(scale + rb);
  PdlWait();  // weights only so far
  PdlTrigger();
  uint4* xs = smem + W * S * 64 + m * begin * (kTileInputs / 8);
  float inv[M];
  StageX<M>(x, m, k, begin * kTileInputs, (end - begin) * kTileInputs, xs, inv);
  __syncwarp();
  // Lane (g, t) reads x row min(g, m - 1) (column g of B), its 16 halves of each tile.
  const uint32_t xa = SmemAddress(xs + min(g, m - 1) * (end - begin) * (kTileInputs / 8) + 2 * t);
  float acc[1][1][4] = {{{0.0f, 0.0f, 0.0f, 0.0f}}};
  for (int base = begin; base < end; base += S) {
#pragma unroll
    for (int u = 0; u < S; ++u) {
      if (base + u < end) {  // warp-uniform
        issue((u + S - 1) % S);
        CpAsyncWait<S - 1>();  // this tile's group has landed
        const uint4 wa = LdShared16(mine + u * 1024), wb = LdShared16(mine + u * 1024 + 512);
        const uint32_t xo = xa + (base + u - begin) * (kTileInputs * 2);
        const uint4 x0 = LdShared16(xo), x1 = LdShared16(xo + 16);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const uint32_t a = Word(wa, s), b = Word(wb, s);
          const uint4& xv = s < 2 ? x0 : x1;
          MmaF16(acc[0][0], F16Pair(a, 0), F16Pair(b, 0), F16Pair(a, 1), F16Pair(b, 1), Word(xv, 2 * (s % 2)),
                 Word(xv, 2 * (s % 2) + 1));
        }
      }
    }
  }
  // acc: rows g (0, 1) and g + 8 (2, 3) of x rows 2t and 2t + 1 (only
  // those below m are stored).
  float i0 = 0.0f, i1 = 0.0f;
#pragma unroll
  for (int r = 0; r < M; ++r) {
    if (r == 2 * t) i0 = inv[r];
    if (r == 2 * t + 1) i1 = inv[r];
  }
  acc[0][0][0] *= i0 * sa;
  acc[0][0][1] *= i1 * sa;
  acc[0][0][2] *= i0 * sb;
  acc[0][0][3] *= i1 * sb;
  CpAsyncWait<0>();
  __syncthreads();  // the stages become the reduction's scratch
  ReduceAndStore<kSilu, W, 1, 1>(reinterpret_cast<float*>(smem), acc, bias, out, out_fp32, n, m);
}

// Fewest rows of x the tensor-core kernel takes: 2 by default (at one row
// it measured slower than gemv.cu's kernel; docs/performance.md);
// TPSERVE_GEMV_FP8_MMA=0 turns it off, =2 takes one row too (read once, for
// A/B runs).
int LeastRows() {
  static const int least = [] {
    const int v = EnvIntInRange("TPSERVE_GEMV_FP8_MMA", 0, 2, 1);
    return v == 0 ? kGemvFp8MmaMaxRows + 1 : v == 2 ? 1 : 2;
  }();
  return least;
}

// x's f16 copy may take up to this much of a block's shared memory (the
// 7B down at two rows: 74 KB).
constexpr size_t kMaxXBytes = 96 * 1024;

size_t SmemBytes(int warps, int m, int k) {
  return static_cast<size_t>(warps) * kStages * 1024 + static_cast<size_t>(m) * k * 2;
}

// Blocks of the instantiation an SM holds with `smem` bytes each (cached per
// KB of shared memory); sets its shared-memory limit on first use.
template <int M, bool kSilu, int W>
int BlocksPerSm(size_t smem) {
  static std::atomic<int> cache[256];
  static const bool limit_set = [] {
    int device = 0, most = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
        cudaFuncSetAttribute(GemvFp8MmaKernel<M, kSilu, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, most) !=
            cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return true;
  }();
  if (!limit_set) return 0;
  const size_t kb = (smem + 1023) / 1024;
  if (kb >= 256) return 0;
  int per_sm = cache[kb].load(std::memory_order_relaxed);
  if (per_sm == 0) {
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, GemvFp8MmaKernel<M, kSilu, W>, W * 32, kb * 1024) !=
        cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    cache[kb].store(per_sm, std::memory_order_relaxed);
  }
  return per_sm;
}

template <int M, bool kSilu, int W>
absl::Status LaunchWarps(int tiles, const bf16* x, const __nv_fp8_e4m3* w, const float* scale, const bf16* bias,
                         void* out, bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  const size_t smem = SmemBytes(W, m, k);
  if (BlocksPerSm<M, kSilu, W>(smem) == 0) {
    return absl::InternalError(absl::StrCat("GemvFp8Mma: ", smem, " bytes of shared memory do not fit a block"));
  }
  TP_CUDA_CHECK(LaunchPdl(GemvFp8MmaKernel<M, kSilu, W>, dim3(tiles), dim3(W * 32), smem, stream, x, w, scale, bias,
                          out, out_fp32, n, k, m));
  return absl::OkStatus();
}

// Eight warps a block (k split eight ways), whatever the grid: at two rows
// of the 7B shape (H200, 2026-12-01 20:59 UTC, ms a step) 2.990 against 3.148
// with four warps and 3.249 / 3.292 choosing by residency as
// gemv_int_mma.cu does (eight for one-wave grids, else two).
constexpr int kWarps = 8;

template <bool kSilu>
absl::Status Dispatch(const bf16* x, const __nv_fp8_e4m3* w, const float* scale, const bf16* bias, void* out,
                      bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (m < 1 || m > kGemvFp8MmaMaxRows || k % kTileInputs != 0 || n <= 0 ||
      static_cast<size_t>(m) * k * 2 > kMaxXBytes) {
    return absl::InvalidArgumentError(absl::StrCat(kSilu ? "GemvFp8MmaSiluMul" : "GemvFp8Mma", ": m (", m,
                                                   ") must be 1 to ", kGemvFp8MmaMaxRows, ", k (", k,
                                                   ") a multiple of ", kTileInputs, " with m * k * 2 <= ",
                                                   kMaxXBytes, ", n (", n, ") positive"));
  }
  const int tiles = (n + (kSilu ? 7 : 15)) / (kSilu ? 8 : 16);
  if (m == 1) return LaunchWarps<1, kSilu, kWarps>(tiles, x, w, scale, bias, out, out_fp32, m, n, k, stream);
  return LaunchWarps<2, kSilu, kWarps>(tiles, x, w, scale, bias, out, out_fp32, m, n, k, stream);
}

}  // namespace

bool GemvFp8MmaTakes(int m, int k) {
  return m >= LeastRows() && m <= kGemvFp8MmaMaxRows && k % kTileInputs == 0 &&
         static_cast<size_t>(m) * k * 2 <= kMaxXBytes;
}

absl::Status GemvFp8Mma(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, const bf16* bias, void* out,
                        bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  return Dispatch<false>(x, w, w_scale, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvFp8MmaSiluMul(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, bf16* out, int m,
                               int inter, int k, cudaStream_t stream) {
  return Dispatch<true>(x, w, w_scale, nullptr, out, false, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
