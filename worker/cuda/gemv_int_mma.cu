#include "worker/cuda/gemv_int_mma.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

// Why tensor cores for a GEMV: dequantizing a code into an fp32 FMA costs
// ~3.5 instructions per weight (gemv_int.cu's scalar kernel), which at two
// int4 weights per byte keeps the GEMV issue-bound near half the copy
// bandwidth. Here a code becomes a bf16 with one LOP3 per two codes
// ((w >> 4s) & 0x000F000F | 0x43004300 is the bf16 pair 128 + q), the zero
// point is subtracted exactly in bf16 (128 + zero <= 144 and q - zero are
// small integers), and one mma.m16n8k16 multiplies 16 weight rows by the 16
// matching inputs of the (one or two) x rows in the narrow n dimension,
// accumulating in fp32. The products (q - zero) * x are exact; the group
// scale multiplies each tile's fp32 sums. The result differs from the scalar
// kernel only by fp32 summation order. int8 stays on the scalar kernels: the
// same scheme (each byte PRMT-ed into the mantissa of 2^23, the zero point
// subtracted in fp32, the two upper halves packed into a bf16 pair) measured
// slower there (7B int8 batch 1: 4.01 ms a step against 3.72, one H200,
// 2026-12-01 04:07 UTC).
//
// A tile is 16 weight rows (plain GEMV) or 8 gate + 8 up rows (SiLU·mul) by
// 128 inputs: lane (g, t) of the warp (g = lane / 4, t = lane % 4) loads 16
// bytes of row g and of row g + 8 at the tile's 16-byte chunk t. An mma's
// logical k index need not be the physical input: a dot product only needs
// A's k and B's k to name the same input, so each lane feeds the mma the
// codes in the order its registers hold them, the pairs (j, j + 4) of a
// word, and builds x's pairs in that same order with PRMT.
namespace tpserve::worker::cuda {
namespace {

// Warps of a block share one row tile and split k between them (a
// 3,584-input row is 28 int4 tiles; without the split the 224-288 row tiles
// of the 7B model's qkv / o_proj / down would leave most SMs idle); their
// sums meet in shared memory.
constexpr int kWarps = 8;
// Tiles per warp whose loads are in flight: two 16-byte loads per lane each.
constexpr int kDepth = 3;
// Tiles a warp of GemvIntAsyncKernel has in flight (+1 being computed).
constexpr int kStages = 6;

template <int BITS>
constexpr int TileInputs() {
  return 4 * 128 / BITS;  // four lanes' 16 bytes
}

__device__ __forceinline__ uint32_t Prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// a * 1 + neg for bf16 pairs: subtracts a zero point exactly (sub.bf16x2 is
// sm_90 only; fma.rn.bf16x2 is sm_80).
__device__ __forceinline__ uint32_t AddBf16x2(uint32_t a, uint32_t neg) {
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(0x3F803F80u), "r"(neg));
  return d;
}

// c += A (16 x 16, rows g and g + 8) * B (16 x 8, column g).
__device__ __forceinline__ void Mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t Word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// -(128 + zero) as a bf16 pair (exact: zero <= 16).
__device__ __forceinline__ uint32_t NegZero4(int zero) {
  const uint32_t b = (__float_as_uint(128.0f + static_cast<float>(zero)) >> 16) | 0x8000u;
  return b | (b << 16);
}

// Bf16 pair (128 + code s, 128 + code s + 4) of an int4 word, minus 128 + zero.
__device__ __forceinline__ uint32_t Int4Pair(uint32_t word, int s, uint32_t neg_zero) {
  return AddBf16x2(((word >> (4 * s)) & 0x000F000Fu) | 0x43004300u, neg_zero);
}

// One int4 tile: this lane's 32 codes of rows g (wa) and g + 8 (wb), x its 32
// inputs. Word w holds inputs 8w..8w+7; mma (w, h) takes code pairs 2h and
// 2h + 1, i.e. inputs (2h, 2h + 4) and (2h + 1, 2h + 5).
__device__ __forceinline__ void Int4Tile(const uint4& wa, const uint4& wb, uint32_t nza, uint32_t nzb,
                                         const uint4 (&x)[4], float (&c)[4]) {
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const uint4& xv = x[w];
    const uint32_t xs[4] = {Prmt(xv.x, xv.z, 0x5410), Prmt(xv.x, xv.z, 0x7632), Prmt(xv.y, xv.w, 0x5410),
                            Prmt(xv.y, xv.w, 0x7632)};
    const uint32_t a = Word(wa, w), b = Word(wb, w);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      Mma(c, Int4Pair(a, 2 * h, nza), Int4Pair(b, 2 * h, nzb), Int4Pair(a, 2 * h + 1, nza),
          Int4Pair(b, 2 * h + 1, nzb), xs[2 * h], xs[2 * h + 1]);
    }
  }
}

// 16-byte pieces of x one lane's tile reads: its 32 int4 inputs.
template <int BITS>
constexpr int XChunks() {
  static_assert(BITS == 4, "int8 takes gemv_int.cu's scalar kernels (measured faster)");
  return 4;
}

template <int BITS>
__device__ __forceinline__ void LoadX(const bf16* __restrict__ x, uint4 (&xv)[XChunks<BITS>()]) {
#pragma unroll
  for (int i = 0; i < XChunks<BITS>(); ++i) xv[i] = __ldg(reinterpret_cast<const uint4*>(x) + i);
}

// One tile of rows g / g + 8 with their scales and zero points: acc += the
// scaled sums (acc[0..1]: row g, x rows 0..1; acc[2..3]: row g + 8).
template <int BITS>
__device__ __forceinline__ void TileDot(const uint4& wa, const uint4& wb, float sa, float sb, int za, int zb,
                                        const uint4 (&xv)[XChunks<BITS>()], float (&acc)[4]) {
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  Int4Tile(wa, wb, NegZero4(za), NegZero4(zb), xv, c);
  acc[0] = fmaf(c[0], sa, acc[0]);
  acc[1] = fmaf(c[1], sa, acc[1]);
  acc[2] = fmaf(c[2], sb, acc[2]);
  acc[3] = fmaf(c[3], sb, acc[3]);
}

// The two weight rows lane group g streams: rows past the end stream the
// last row and are not written.
template <bool kSilu>
__device__ __forceinline__ void TileRows(int n, int g, int& ra, int& rb) {
  if constexpr (kSilu) {
    ra = min(static_cast<int>(blockIdx.x) * 8 + g, n - 1);
    rb = n + ra;
  } else {
    ra = min(static_cast<int>(blockIdx.x) * 16 + g, n - 1);
    rb = min(static_cast<int>(blockIdx.x) * 16 + 8 + g, n - 1);
  }
}

// Sums the warps' partial[warp][g][j] (lane (g, 0)'s acc) and writes the
// block's outputs; called by every thread after the stream.
template <int M, bool kSilu, int W>
__device__ __forceinline__ void ReduceAndStore(float* partial, const float (&acc)[4], const bf16* __restrict__ bias,
                                               void* __restrict__ out, bool out_fp32, int n) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if ((lane & 3) == 0) {
#pragma unroll
    for (int j = 0; j < 4; ++j) partial[(warp * 8 + (lane >> 2)) * 4 + j] = acc[j];
  }
  __syncthreads();
  if (threadIdx.x >= 32) return;
  const int gg = threadIdx.x >> 2, j = threadIdx.x & 3;
  auto total = [&](int jj) {
    float v = 0.0f;
#pragma unroll
    for (int i = 0; i < W; ++i) v += partial[(i * 8 + gg) * 4 + jj];
    return v;
  };
  if constexpr (kSilu) {
    const int col = blockIdx.x * 8 + gg;
    if (j >= M || col >= n) return;  // j: the x row
    const float gs = __bfloat162float(__float2bfloat16(total(j)));
    const float us = __bfloat162float(__float2bfloat16(total(j + 2)));
    const float act = __bfloat162float(__float2bfloat16(gs / (1.0f + __expf(-gs))));
    static_cast<bf16*>(out)[static_cast<size_t>(j) * n + col] = __float2bfloat16(act * us);
  } else {
    const int xrow = j & 1, row = blockIdx.x * 16 + (j >> 1) * 8 + gg;
    if (xrow >= M || row >= n) return;
    const float b = bias != nullptr ? __bfloat162float(bias[row]) : 0.0f;
    StoreOut(out, out_fp32, static_cast<size_t>(xrow) * n + row, total(j) + b);
  }
}

// What one lane streams: the 16-byte chunk t of its two rows at tile 0, the
// rows' first (row, group) index, its warp's share [begin, end) of the k
// tiles (W warps split them), and its x row at its first input (x is read
// only after PdlWait()).
struct LaneStream {
  const uint4* pa;
  const uint4* pb;
  size_t ga, gb;
  int begin, end;
  const bf16* x;
};

template <int BITS, int M, bool kSilu, int W>
__device__ __forceinline__ LaneStream MakeLaneStream(const bf16* x, const IntWeightView& w, int n, int k) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  int ra, rb;
  TileRows<kSilu>(n, g, ra, rb);
  const int chunks = k * BITS / 128, groups = k / w.group, tiles = k / TileInputs<BITS>();
  LaneStream s;
  s.pa = reinterpret_cast<const uint4*>(w.codes) + static_cast<size_t>(ra) * chunks + t;
  s.pb = reinterpret_cast<const uint4*>(w.codes) + static_cast<size_t>(rb) * chunks + t;
  s.ga = static_cast<size_t>(ra) * groups;
  s.gb = static_cast<size_t>(rb) * groups;
  s.begin = warp * tiles / W;
  s.end = (warp + 1) * tiles / W;
  s.x = x + static_cast<size_t>(min(g, M - 1)) * k + t * (TileInputs<BITS>() / 4);
  return s;
}

// kSilu: n is `inter`, rows g are gate rows and rows g + 8 the matching up
// rows, and the block writes 8 activations; otherwise 16 output rows.
// Register pipeline: kDepth tiles of every lane's weights in registers
// (TPSERVE_GEMV_INT_MMA=reg; kept for A/B runs against the cp.async form).
template <int BITS, int M, bool kSilu>
__global__ void __launch_bounds__(kWarps * 32, 3)
    GemvIntMmaKernel(const bf16* __restrict__ x, IntWeightView w, const bf16* __restrict__ bias,
                     void* __restrict__ out, bool out_fp32, int n, int k) {
  constexpr int kIn = TileInputs<BITS>();
  __shared__ float partial[kWarps * 8 * 4];
  const LaneStream ls = MakeLaneStream<BITS, M, kSilu, kWarps>(x, w, n, k);
  const uint4 *pa = ls.pa, *pb = ls.pb;
  const size_t ga = ls.ga, gb = ls.gb;
  const int begin = ls.begin, end = ls.end;
  uint4 va[kDepth], vb[kDepth];
  float sa[kDepth], sb[kDepth];
  int za[kDepth], zb[kDepth];
  auto load = [&](int u, int tile) {
    if (tile < end) {
      va[u] = __ldcs(pa + 4 * tile);  // streamed once
      vb[u] = __ldcs(pb + 4 * tile);
      const int gi = tile * kIn / w.group;
      sa[u] = __ldg(w.scale + ga + gi);
      sb[u] = __ldg(w.scale + gb + gi);
      za[u] = __ldg(w.zero + ga + gi);
      zb[u] = __ldg(w.zero + gb + gi);
    }
  };
#pragma unroll
  for (int u = 0; u < kDepth; ++u) load(u, begin + u);
  // Weights only so far; x is the previous kernel's output.
  PdlWait();
  PdlTrigger();
  const bf16* xr = ls.x;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int base = begin; base < end; base += kDepth) {
#pragma unroll
    for (int u = 0; u < kDepth; ++u) {
      const int tile = base + u;
      if (tile < end) {  // warp-uniform
        uint4 xv[XChunks<BITS>()];
        LoadX<BITS>(xr + tile * kIn, xv);
        TileDot<BITS>(va[u], vb[u], sa[u], sb[u], za[u], zb[u], xv, acc);
        load(u, tile + kDepth);
      }
    }
  }
  ReduceAndStore<M, kSilu, kWarps>(partial, acc, bias, out, out_fp32, n);
}

// The default pipeline: the codes go to shared memory with cp.async, kStages
// tiles a warp ahead, so that the bytes in flight are not bounded by
// registers (the register form above keeps 3 KB a warp in flight and the 7B
// int4 step streamed at ~1.9 TB/s with it); scales and zero points (6 bytes
// a row and group) ride in a register ring of the same depth, x one tile
// ahead. Each lane reads back only what it copied, so no barrier is needed
// until the reduction. W warps split k; dynamic shared memory W * kStages KB.
template <int BITS, int M, bool kSilu, int W>
__global__ void __launch_bounds__(W * 32)
    GemvIntAsyncKernel(const bf16* __restrict__ x, IntWeightView w, const bf16* __restrict__ bias,
                       void* __restrict__ out, bool out_fp32, int n, int k) {
  constexpr int kIn = TileInputs<BITS>();
  extern __shared__ uint4 stage[];  // [W][kStages][2 rows][32 lanes]
  const LaneStream ls = MakeLaneStream<BITS, M, kSilu, W>(x, w, n, k);
  const uint4 *pa = ls.pa, *pb = ls.pb;
  const size_t ga = ls.ga, gb = ls.gb;
  const int begin = ls.begin, end = ls.end;
  uint4* mine = stage + (threadIdx.x >> 5) * kStages * 64 + (threadIdx.x & 31);
  float sa[kStages], sb[kStages];
  uint32_t zs[kStages];  // zero of row g | zero of row g + 8 << 16
  // Always commits a group (empty past the end) so that wait_group counts
  // tiles.
  auto issue = [&](int u, int tile) {
    if (tile < end) {
      CpAsync16(SmemAddress(mine + u * 64), pa + 4 * tile);
      CpAsync16(SmemAddress(mine + u * 64 + 32), pb + 4 * tile);
      const int gi = tile * kIn / w.group;
      sa[u] = __ldg(w.scale + ga + gi);
      sb[u] = __ldg(w.scale + gb + gi);
      zs[u] = static_cast<uint32_t>(__ldg(w.zero + ga + gi)) | static_cast<uint32_t>(__ldg(w.zero + gb + gi)) << 16;
    }
    CpAsyncCommit();
  };
#pragma unroll
  for (int u = 0; u < kStages - 1; ++u) issue(u, begin + u);
  PdlWait();  // weights only so far
  PdlTrigger();
  const bf16* xr = ls.x;
  uint4 xn[XChunks<BITS>()];
  if (begin < end) LoadX<BITS>(xr + begin * kIn, xn);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int base = begin; base < end; base += kStages) {
#pragma unroll
    for (int u = 0; u < kStages; ++u) {
      const int tile = base + u;
      if (tile < end) {  // warp-uniform
        issue((u + kStages - 1) % kStages, tile + kStages - 1);
        CpAsyncWait<kStages - 1>();  // this tile's group has landed
        const uint4 wa = mine[u * 64], wb = mine[u * 64 + 32];
        uint4 xv[XChunks<BITS>()];
#pragma unroll
        for (int i = 0; i < XChunks<BITS>(); ++i) xv[i] = xn[i];
        if (tile + 1 < end) LoadX<BITS>(xr + (tile + 1) * kIn, xn);
        TileDot<BITS>(wa, wb, sa[u], sb[u], static_cast<int>(zs[u] & 0xFFFFu), static_cast<int>(zs[u] >> 16), xv,
                      acc);
      }
    }
  }
  CpAsyncWait<0>();
  __syncthreads();  // the stages become the reduction's scratch
  ReduceAndStore<M, kSilu, W>(reinterpret_cast<float*>(stage), acc, bias, out, out_fp32, n);
}

enum class Variant { kScalar, kRegisters, kAsync };

// TPSERVE_GEMV_INT_MMA (read once, for A/B runs): 0 = gemv_int.cu's scalar
// kernels, reg = the register pipeline, unset or anything else = cp.async.
Variant ChosenVariant() {
  static const Variant v = [] {
    const std::optional<std::string> e = EnvValue("TPSERVE_GEMV_INT_MMA");
    if (e == "0") return Variant::kScalar;
    if (e == "reg") return Variant::kRegisters;
    return Variant::kAsync;
  }();
  return v;
}

int SmCount() {
  static const int sms = [] {
    int device = 0, count = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      cudaGetLastError();
      return 132;
    }
    return count;
  }();
  return sms;
}

template <int BITS, int M, bool kSilu>
absl::Status Launch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int n, int k,
                    cudaStream_t stream) {
  const int rows_per_block = kSilu ? 8 : 16;
  const dim3 grid((n + rows_per_block - 1) / rows_per_block);
  if (ChosenVariant() == Variant::kRegisters) {
    TP_CUDA_CHECK(LaunchPdl(GemvIntMmaKernel<BITS, M, kSilu>, grid, dim3(kWarps * 32), 0, stream, x, w, bias, out,
                            out_fp32, n, k));
  } else if (static_cast<int>(grid.x) < 3 * SmCount()) {
    // Few row tiles (the 7B qkv, o_proj, down: 224-288): split k 8 ways so
    // that every SM streams; 48 KB of stages a block.
    TP_CUDA_CHECK(LaunchPdl(GemvIntAsyncKernel<BITS, M, kSilu, 8>, grid, dim3(8 * 32), 8 * kStages * 1024, stream,
                            x, w, bias, out, out_fp32, n, k));
  } else {
    TP_CUDA_CHECK(LaunchPdl(GemvIntAsyncKernel<BITS, M, kSilu, 4>, grid, dim3(4 * 32), 4 * kStages * 1024, stream,
                            x, w, bias, out, out_fp32, n, k));
  }
  return absl::OkStatus();
}

template <bool kSilu>
absl::Status Dispatch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                      int k, cudaStream_t stream) {
  if (m < 1 || m > kGemvIntMaxRows) {
    return absl::InvalidArgumentError(absl::StrCat(kSilu ? "GemvIntSiluMul" : "GemvInt", ": 1 or 2 rows, not ", m));
  }
  if (w.bits != 4) return absl::InvalidArgumentError(absl::StrCat("GemvIntMma: int4 only, not ", w.bits, " bits"));
  return m == 1 ? Launch<4, 1, kSilu>(x, w, bias, out, out_fp32, n, k, stream)
                : Launch<4, 2, kSilu>(x, w, bias, out, out_fp32, n, k, stream);
}

}  // namespace

bool GemvIntMmaTakes(const IntWeightView& w) {
  return w.bits == 4 && ChosenVariant() != Variant::kScalar && w.group % TileInputs<4>() == 0;
}

absl::Status GemvIntMma(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m,
                        int n, int k, cudaStream_t stream) {
  return Dispatch<false>(x, w, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvIntMmaSiluMul(const bf16* x, const IntWeightView& w, bf16* out, int m, int inter, int k,
                               cudaStream_t stream) {
  return Dispatch<true>(x, w, nullptr, out, false, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
