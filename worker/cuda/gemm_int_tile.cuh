// The fused int GEMM's block shape and per-stage arithmetic (gemm_int.cu):
// the shared-memory stage layout, x's swizzle, the weight rows a row tile
// stands for, int8 codes as exact bf16 pairs, and one warp's k tile on the
// tensor cores (nvcc only).
#ifndef TPSERVE_WORKER_CUDA_GEMM_INT_TILE_CUH_
#define TPSERVE_WORKER_CUDA_GEMM_INT_TILE_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int_mma_tile.cuh"

namespace tpserve::worker::cuda::gemm_int {

constexpr int kThreads = 128;
constexpr int kWarpRowTiles = 2;                       // row tiles a warp
constexpr int kWarpColTiles = 4;                       // 8-row tiles of x a warp
constexpr int kRowTiles = 2 * kWarpRowTiles;           // a block's, over two warps
constexpr int kXRows = 2 * kWarpColTiles * 8;          // a block's rows of x, over two warps
constexpr int kCodeStageBytes = kRowTiles * 1024;      // 16 rows x 64 bytes a row tile

template <int BITS>
constexpr int Stages() {
  return BITS == 4 ? 3 : 4;
}
template <int BITS>
constexpr int XRowBytes() {
  return TileInputs<BITS>() * 2;
}
template <int BITS>
constexpr int StageBytes() {
  return kCodeStageBytes + kXRows * XRowBytes<BITS>();
}
template <int BITS>
constexpr int SmemBytes() {
  return Stages<BITS>() * StageBytes<BITS>();
}

// Where x's 16-byte segment j of row r lies in a stage's row: lane (g, t)
// reads segments 4t + w (int4; 2t + w/2 int8) of row g of a column tile, and
// eight lanes (g in {2i, 2i + 1}, t 0..3) share a shared-memory phase; this
// swizzle spreads each such eight over all 32 banks.
__device__ __forceinline__ int XSlot(int r, int j) { return j ^ (((j >> 3) & 1) << 1) ^ (r & 1); }

// The weight row behind row i (0..15) of row tile `tile`: 16 consecutive
// rows, or (SiLU·mul, n = inter) gate rows 0..7 and the matching up rows.
// Rows past the end read the last one and are not stored.
template <bool kSilu>
__device__ __forceinline__ int TileRow(int tile, int i, int n) {
  if constexpr (kSilu) return (i < 8 ? 0 : n) + min(tile * 8 + (i & 7), n - 1);
  return min(tile * 16 + i, n - 1);
}

// The bf16 pair (q_j0 - zero, q_j0+1 - zero) of an int8 word: each byte
// PRMT-ed into the mantissa of 2^23 and 2^23 + zero taken off, exactly.
__device__ __forceinline__ uint32_t Int8Pair(uint32_t word, int j0, float neg) {
  const float lo = __uint_as_float(Prmt(word, kMagicBits, 0x7650u | j0)) + neg;
  const float hi = __uint_as_float(Prmt(word, kMagicBits, 0x7650u | (j0 + 1))) + neg;
  const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&p);
}

// One stage's k tile for this warp: c[r][nt] = the exact sums of row tile r
// (rows g, g + 8) by column tile nt (x rows 2t, 2t + 1), before scaling.
// `codes`: the lane's 16 bytes of row g in the warp's first row tile (row g +
// 8 is 512 bytes on, the next tile 1 KB); `xs`: the stage's x rows.
template <int BITS>
__device__ __forceinline__ void StageDot(uint32_t codes, uint32_t xs, int xrow0, const uint32_t (&nz)[kWarpRowTiles][2],
                                         const float (&negz)[kWarpRowTiles][2],
                                         float (&c)[kWarpRowTiles][kWarpColTiles][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  uint4 wa[kWarpRowTiles], wb[kWarpRowTiles];
#pragma unroll
  for (int r = 0; r < kWarpRowTiles; ++r) {
    wa[r] = LdShared16(codes + r * 1024);
    wb[r] = LdShared16(codes + r * 1024 + 512);
  }
  if constexpr (BITS == 4) {
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t xp[kWarpColTiles][4];
#pragma unroll
      for (int nt = 0; nt < kWarpColTiles; ++nt) {
        const int row = xrow0 + nt * 8 + g;
        Int4XPairs(LdShared16(xs + row * XRowBytes<4>() + XSlot(row, 4 * t + w) * 16), xp[nt]);
      }
#pragma unroll
      for (int r = 0; r < kWarpRowTiles; ++r) {
        const uint32_t a = Word(wa[r], w), b = Word(wb[r], w);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t a0 = Int4Pair(a, 2 * h, nz[r][0]), a1 = Int4Pair(b, 2 * h, nz[r][1]),
                         a2 = Int4Pair(a, 2 * h + 1, nz[r][0]), a3 = Int4Pair(b, 2 * h + 1, nz[r][1]);
#pragma unroll
          for (int nt = 0; nt < kWarpColTiles; ++nt) {
            MmaM16N8K16<bf16>(c[r][nt], a0, a1, a2, a3, xp[nt][2 * h], xp[nt][2 * h + 1]);
          }
        }
      }
    }
  } else {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint4 xv[kWarpColTiles];
#pragma unroll
      for (int nt = 0; nt < kWarpColTiles; ++nt) {
        const int row = xrow0 + nt * 8 + g;
        xv[nt] = LdShared16(xs + row * XRowBytes<8>() + XSlot(row, 2 * t + half) * 16);
      }
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const int w = 2 * half + q;  // code word: the lane's inputs 4w .. 4w + 3
#pragma unroll
        for (int r = 0; r < kWarpRowTiles; ++r) {
          const uint32_t a = Word(wa[r], w), b = Word(wb[r], w);
          const uint32_t a0 = Int8Pair(a, 0, negz[r][0]), a1 = Int8Pair(b, 0, negz[r][1]),
                         a2 = Int8Pair(a, 2, negz[r][0]), a3 = Int8Pair(b, 2, negz[r][1]);
#pragma unroll
          for (int nt = 0; nt < kWarpColTiles; ++nt) {
            MmaM16N8K16<bf16>(c[r][nt], a0, a1, a2, a3, Word(xv[nt], 2 * q), Word(xv[nt], 2 * q + 1));
          }
        }
      }
    }
  }
}

}  // namespace tpserve::worker::cuda::gemm_int

#endif  // TPSERVE_WORKER_CUDA_GEMM_INT_TILE_CUH_
