#include "worker/cuda/gemv_fp8_mma.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int_mma_tile.cuh"
#include "worker/cuda/pdl.cuh"

// The FP8 decode GEMV on f16 tensor cores at one or two rows of x. Why:
// gemv.cu's kernel spends ~60 instructions on each 16 bytes of weights (8
// conversions to f16 pairs, 16 to float, the x row's bf16 unpacked, 16
// FMAs); here each E4M3 pair becomes an exact f16 pair with one cvt and one
// mma.m16n8k16 multiplies 16 weight rows by 16 inputs, fp32 sums: ~13
// instructions a lane's 32 bytes. At two rows, where gemv.cu's FMAs and
// conversions double, that wins (7B batch 2 3.38 -> 2.99 ms a step on an
// H200); at one row the GEMVs stream at what their length allows, not what
// their instructions do, and gemv.cu's kernel stays (docs/performance.md,
// thirteenth session). The same frame for GPTQ int8 (bytes PRMT-ed under
// 0x64, less 1024 + zero) measured slower than gemv_int.cu's scalar kernels
// at one and two rows (branch int8-f16-staged).
//
// x is converted once per warp, after PdlWait(), into f16 in shared memory
// for the warp's share of k, at a power-of-two scale chosen from that
// share's max |x| (mapped into [2^14, 2^15)): bf16's 8 significant bits fit
// f16's 11, so every input within 2^29 of the max is exact, the rest are
// rounded at 2^-40 of the max, and nothing overflows. The products of two
// exact f16s are exact in fp32, so the result differs from gemv.cu's only
// in the order of the fp32 sums. Each warp's sums are scaled back (and by
// the rows' FP8 scales) before the block's reduction.
//
// A tile is 16 weight rows (8 gate + 8 up rows for SiLU·mul) by 64 inputs:
// lane (g, t) (g = lane / 4, t = lane % 4) copies 16 bytes of row g and of
// row g + 8 at byte 16 t of the tile (row-major). The mma's logical k
// need not be the physical input, as long as A and B name the same one: in
// k-step s, lane t's logical inputs (2t, 2t + 1, 2t + 8, 2t + 9) are its
// bytes 4s .. 4s + 3, so each word of the copied chunk is an A pair (low
// half) and its partner (high half), and the matching x halves are 4
// consecutive f16s. Eight warps split k; five tiles a warp in flight
// (cp.async), as in gemv_int_mma.cu.
namespace tpserve::worker::cuda {
namespace {

constexpr int kTileInputs = 64;
constexpr int kStages = 6;  // k tiles a warp has in flight (+1 being computed)
// Eight warps a block (k split eight ways), whatever the grid: at two rows
// of the 7B FP8 shape (H200, 2026-12-01 20:59 UTC, ms a step) 2.990 against
// 3.148 with four warps and 3.249 / 3.292 choosing by residency as
// gemv_int_mma.cu does (eight or four for one-wave grids, else two).
constexpr int kWarps = 8;

// Shared memory a block takes at m rows of k inputs: its weight stages (48
// KB) and x as f16 (m * k * 2 bytes).
size_t SmemBytes(int m, int k) {
  return static_cast<size_t>(kWarps) * kStages * 1024 +
         static_cast<size_t>(std::max(m, 0)) * std::max(k, 0) * 2;
}

constexpr int kMaxDevices = 64;

// The current device's shared memory a block may opt in to (0 if unknown).
size_t MaxSmemPerBlock() {
  int device = 0, v = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return static_cast<size_t>(v);
}

// Whether the kernel takes m rows of k inputs (m 1 or 2, k a positive
// multiple of a tile, its shared memory within the device's).
bool Fits(int m, int k) {
  return m >= 1 && m <= 2 && k > 0 && k % kTileInputs == 0 && SmemBytes(m, k) <= MaxSmemPerBlock();
}

// The f16 pair of E4M3 bytes (2h, 2h + 1) of a word (exact).
__device__ __forceinline__ uint32_t E4m3F16Pair(uint32_t word, int h) {
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
// input). W warps split the k tiles; a block is one row tile. M = m (1 or
// 2); the rows' FP8 scales multiply the totals.
template <int M, bool kSilu>
__global__ void __launch_bounds__(kWarps * 32)
    GemvFp8MmaKernel(const bf16* __restrict__ x, const __nv_fp8_e4m3* __restrict__ w, const float* __restrict__ scale,
                     const bf16* __restrict__ bias, void* __restrict__ out, bool out_fp32, int n, int k, int m) {
  constexpr int S = kStages, W = kWarps, kIn = kTileInputs;
  extern __shared__ uint4 smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int tiles = k / kIn, begin = warp * tiles / W, end = (warp + 1) * tiles / W;
  int ra, rb;
  TileRows<kSilu>(n, static_cast<int>(blockIdx.x), g, ra, rb);
  const uint4* pa = reinterpret_cast<const uint4*>(w + static_cast<size_t>(ra) * k + begin * kIn) + t;
  const uint4* pb = reinterpret_cast<const uint4*>(w + static_cast<size_t>(rb) * k + begin * kIn) + t;
  const uint32_t mine = SmemAddress(smem + warp * S * 64 + lane);
  int next = begin;
  // Requests k tile `next` into stage u; always commits a group (empty past
  // the end) so that wait_group counts tiles.
  auto issue = [&](int u) {
    if (next < end) {
      CpAsync16(mine + u * 1024, pa);
      CpAsync16(mine + u * 1024 + 512, pb);
      pa += kIn / 16;
      pb += kIn / 16;
    }
    ++next;
    CpAsyncCommit();
  };
#pragma unroll
  for (int u = 0; u < S - 1; ++u) issue(u);
  const float sa = __ldg(scale + ra), sb = __ldg(scale + rb);
  PdlWait();  // weights only so far
  PdlTrigger();
  uint4* xs = smem + W * S * 64 + m * begin * (kIn / 8);
  float inv[M];
  StageX<M>(x, m, k, begin * kIn, (end - begin) * kIn, xs, inv);
  __syncwarp();
  // Lane (g, t) reads x row min(g, m - 1) (column g of B), its 16 halves of each tile.
  const uint32_t xa = SmemAddress(xs + min(g, m - 1) * (end - begin) * (kIn / 8) + 2 * t);
  float acc[1][1][4] = {{{0.0f, 0.0f, 0.0f, 0.0f}}};
  for (int base = begin; base < end; base += S) {
#pragma unroll
    for (int u = 0; u < S; ++u) {
      if (base + u < end) {  // warp-uniform
        issue((u + S - 1) % S);
        CpAsyncWait<S - 1>();  // this tile's group has landed
        const uint4 wa = LdShared16(mine + u * 1024), wb = LdShared16(mine + u * 1024 + 512);
        const uint32_t xo = xa + (base + u - begin) * (kIn * 2);
        const uint4 x0 = LdShared16(xo), x1 = LdShared16(xo + 16);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const uint32_t a = Word(wa, s), b = Word(wb, s);
          const uint4& xv = s < 2 ? x0 : x1;
          MmaM16N8K16<__half>(acc[0][0], E4m3F16Pair(a, 0), E4m3F16Pair(b, 0), E4m3F16Pair(a, 1), E4m3F16Pair(b, 1),
                 Word(xv, 2 * (s % 2)), Word(xv, 2 * (s % 2) + 1));
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

template <int M, bool kSilu>
absl::Status LaunchRows(const bf16* x, const __nv_fp8_e4m3* w, const float* scale, const bf16* bias, void* out,
                        bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  // Lets the instantiation take what the device allows, once per device (one
  // process may drive several GPUs: tpserve_bench --tp, one thread a rank).
  static std::atomic<bool> limit_set[kMaxDevices] = {};
  int device = 0;
  TP_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) {
    return absl::InternalError(absl::StrCat("GemvFp8Mma: device ", device, " beyond ", kMaxDevices));
  }
  if (!limit_set[device].load(std::memory_order_acquire)) {
    TP_CUDA_CHECK(cudaFuncSetAttribute(GemvFp8MmaKernel<M, kSilu>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(MaxSmemPerBlock())));
    limit_set[device].store(true, std::memory_order_release);
  }
  const int tiles = (n + (kSilu ? 7 : 15)) / (kSilu ? 8 : 16);
  TP_CUDA_CHECK(LaunchPdl(GemvFp8MmaKernel<M, kSilu>, dim3(tiles), dim3(kWarps * 32), SmemBytes(m, k),
                          stream, x, w, scale, bias, out, out_fp32, n, k, m));
  return absl::OkStatus();
}

// Fewest rows of x the tensor-core kernel takes: 2 by default (at one row
// it measured slower than gemv.cu's kernel: 2.66 against 2.51 ms a 7B step);
// TPSERVE_GEMV_FP8_MMA=0 turns it off, =2 takes one row too (read once, for
// A/B runs).
int LeastRows() {
  static const int least = [] {
    const int v = EnvIntInRange("TPSERVE_GEMV_FP8_MMA", 0, 2, 1);
    return v == 0 ? kGemvFp8MmaMaxRows + 1 : v == 2 ? 1 : 2;
  }();
  return least;
}

template <bool kSilu>
absl::Status Dispatch(const bf16* x, const __nv_fp8_e4m3* w, const float* scale, const bf16* bias, void* out,
                      bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (!Fits(m, k) || n <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kSilu ? "GemvFp8MmaSiluMul" : "GemvFp8Mma", ": m (", m, ") must be 1 to ", kGemvFp8MmaMaxRows, ", k (", k,
        ") a positive multiple of ", kTileInputs, ", n (", n, ") positive, and its ", SmemBytes(m, k),
        " bytes of shared memory within the device's ", MaxSmemPerBlock(), " a block"));
  }
  return m == 1 ? LaunchRows<1, kSilu>(x, w, scale, bias, out, out_fp32, m, n, k, stream)
                : LaunchRows<2, kSilu>(x, w, scale, bias, out, out_fp32, m, n, k, stream);
}

}  // namespace

size_t GemvFp8MmaSmemBytes(int m, int k) { return SmemBytes(m, k); }

bool GemvFp8MmaTakes(int m, int k) { return m >= LeastRows() && m <= kGemvFp8MmaMaxRows && Fits(m, k); }

absl::Status GemvFp8Mma(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, const bf16* bias, void* out,
                        bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  return Dispatch<false>(x, w, w_scale, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvFp8MmaSiluMul(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, bf16* out, int m,
                               int inter, int k, cudaStream_t stream) {
  return Dispatch<true>(x, w, w_scale, nullptr, out, false, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
