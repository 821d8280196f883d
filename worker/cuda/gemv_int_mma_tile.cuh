// The per-tile arithmetic of the tensor-core int4 / int8 decode GEMV
// (gemv_int_mma.cu): codes to exact bf16 pairs less their zero point, x's
// matching pairs, and mma.m16n8k16 over one warp's 16-row tile; and the
// rows a lane streams and the block's final reduction (nvcc only).
#ifndef TPSERVE_WORKER_CUDA_GEMV_INT_MMA_TILE_CUH_
#define TPSERVE_WORKER_CUDA_GEMV_INT_MMA_TILE_CUH_

#include <cstdint>

#include "worker/cuda/device_util.cuh"
#include "worker/cuda/int_layout.cuh"

namespace tpserve::worker::cuda {

// Inputs of a tile: four lanes' 16 bytes of codes.
template <int BITS>
constexpr int TileInputs() {
  static_assert(BITS == 4 || BITS == 8);
  return 4 * 128 / BITS;
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

__device__ __forceinline__ uint32_t Word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// -(128 + zero) as a bf16 pair: 128 + z is 2^7 (1 + z / 128), the bf16
// 0x4300 | z for z < 128 (an int4 zero point, or an int8 one's nibble, is
// <= 16).
__device__ __forceinline__ uint32_t NegZeroPair(uint32_t zero) { return zero * 0x00010001u | 0xC300C300u; }

// Bf16 pair (128 + code s, 128 + code s + 4) of an int4 word, minus 128 +
// zero: one shift (s > 0), one LOP3 (AndOr), one bf16 FMA.
__device__ __forceinline__ uint32_t Int4Pair(uint32_t word, int s, uint32_t neg_zero) {
  return AddBf16x2(AndOr(word >> (4 * s), 0x000F000Fu, 0x43004300u), neg_zero);
}

// x's bf16 pairs matching Int4Pair's code pairs (s, s + 4) for s = 0..3, from
// 8 consecutive inputs (v: inputs 0..7): (0, 4), (1, 5), (2, 6), (3, 7).
__device__ __forceinline__ void Int4XPairs(const uint4& v, uint32_t (&xs)[4]) {
  xs[0] = Prmt(v.x, v.z, 0x5410);
  xs[1] = Prmt(v.x, v.z, 0x7632);
  xs[2] = Prmt(v.y, v.w, 0x5410);
  xs[3] = Prmt(v.y, v.w, 0x7632);
}

// One int4 tile: this lane's 32 codes of rows g (wa) and g + 8 (wb), x its 32
// inputs for each of NT column tiles (8 rows of x each). Word w holds inputs
// 8w..8w+7; mma (w, h) takes code pairs 2h and 2h + 1, i.e. inputs (2h, 2h +
// 4) and (2h + 1, 2h + 5). The codes are dequantized once for all NT tiles.
template <int NT>
__device__ __forceinline__ void Int4Tile(const uint4& wa, const uint4& wb, uint32_t nza, uint32_t nzb,
                                         const uint4 (&x)[NT][4], float (&c)[NT][4]) {
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint32_t xs[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) Int4XPairs(x[nt][w], xs[nt]);
    const uint32_t a = Word(wa, w), b = Word(wb, w);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t a0 = Int4Pair(a, 2 * h, nza), a1 = Int4Pair(b, 2 * h, nzb), a2 = Int4Pair(a, 2 * h + 1, nza),
                     a3 = Int4Pair(b, 2 * h + 1, nzb);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) MmaM16N8K16<bf16>(c[nt], a0, a1, a2, a3, xs[nt][2 * h], xs[nt][2 * h + 1]);
    }
  }
}

// One int8 tile: this lane's 16 codes of rows g (wa) and g + 8 (wb), x its 16
// inputs for each of NT column tiles. A code q - zero = 16 (hi - zh) + (lo -
// zl) with zero = 16 zh + zl (zh <= 16): each nibble difference is an exact
// bf16 pair as in Int4Pair, and two accumulators take the high and the low
// nibbles' products. Word w holds inputs 4w..4w+3 (byte j = input 4w + j);
// Int4Pair's s = 0 / 2 are the low nibbles of bytes (0, 2) / (1, 3), s = 1 / 3
// their high nibbles. (At one or two rows the scalar kernels are faster: two
// mma and four pairs per word cost about what they spend.)
template <int NT>
__device__ __forceinline__ void Int8Tile(const uint4& wa, const uint4& wb, uint32_t za, uint32_t zb,
                                         const uint4 (&x)[NT][2], float (&hi)[NT][4], float (&lo)[NT][4]) {
  const uint32_t nla = NegZeroPair(za & 15), nlb = NegZeroPair(zb & 15), nha = NegZeroPair(za >> 4),
                 nhb = NegZeroPair(zb >> 4);
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const uint32_t a = Word(wa, w), b = Word(wb, w);
    const uint32_t l0 = Int4Pair(a, 0, nla), l1 = Int4Pair(b, 0, nlb), l2 = Int4Pair(a, 2, nla),
                   l3 = Int4Pair(b, 2, nlb);
    const uint32_t h0 = Int4Pair(a, 1, nha), h1 = Int4Pair(b, 1, nhb), h2 = Int4Pair(a, 3, nha),
                   h3 = Int4Pair(b, 3, nhb);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint32_t x01 = Word(x[nt][w / 2], 2 * (w % 2)), x23 = Word(x[nt][w / 2], 2 * (w % 2) + 1);
      const uint32_t x02 = Prmt(x01, x23, 0x5410), x13 = Prmt(x01, x23, 0x7632);
      MmaM16N8K16<bf16>(lo[nt], l0, l1, l2, l3, x02, x13);
      MmaM16N8K16<bf16>(hi[nt], h0, h1, h2, h3, x02, x13);
    }
  }
}

// 16-byte pieces of x one lane's tile reads: its 32 int4 or 16 int8 inputs.
template <int BITS>
constexpr int TileX() {
  return BITS == 4 ? 4 : 2;
}

template <int BITS>
__device__ __forceinline__ void LoadX(const bf16* __restrict__ x, uint4 (&xv)[TileX<BITS>()]) {
#pragma unroll
  for (int i = 0; i < TileX<BITS>(); ++i) xv[i] = __ldg(reinterpret_cast<const uint4*>(x) + i);
}

// One tile of rows g / g + 8 with their scales and zero points (zs: row g's
// | row g + 8's << 16): acc[nt] += the scaled sums (acc[nt][0..1]: row g, x
// rows 8 nt + 2t and + 1; acc[nt][2..3]: row g + 8; with one x row only
// acc[0][0] and acc[0][2] are kept).
template <int BITS, int M, int NT>
__device__ __forceinline__ void TileDot(const uint4& wa, const uint4& wb, float sa, float sb, uint32_t zs,
                                        const uint4 (&xv)[NT][TileX<BITS>()], float (&acc)[NT][4]) {
  float c[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.0f;
  if constexpr (BITS == 4) {
    Int4Tile<NT>(wa, wb, NegZeroPair(zs & 0xFFFFu), NegZeroPair(zs >> 16), xv, c);
  } else {
    float lo[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) lo[nt][0] = lo[nt][1] = lo[nt][2] = lo[nt][3] = 0.0f;
    Int8Tile<NT>(wa, wb, zs & 0xFFFFu, zs >> 16, xv, c, lo);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) c[nt][j] = fmaf(c[nt][j], 16.0f, lo[nt][j]);
    }
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    acc[nt][0] = fmaf(c[nt][0], sa, acc[nt][0]);
    acc[nt][2] = fmaf(c[nt][2], sb, acc[nt][2]);
    if constexpr (M > 1) {
      acc[nt][1] = fmaf(c[nt][1], sa, acc[nt][1]);
      acc[nt][3] = fmaf(c[nt][3], sb, acc[nt][3]);
    }
  }
}

// The two weight rows lane group g streams in row tile `tile`: rows past the
// end stream the last row and are not written.
template <bool kSilu>
__device__ __forceinline__ void TileRows(int n, int tile, int g, int& ra, int& rb) {
  if constexpr (kSilu) {
    ra = min(tile * 8 + g, n - 1);
    rb = n + ra;
  } else {
    ra = min(tile * 16 + g, n - 1);
    rb = min(tile * 16 + 8 + g, n - 1);
  }
}

// Sums the warps' partial[r][nt][warp][g][t][j] (lane (g, t)'s acc[r][nt]:
// rows g and g + 8 of row tile r, x rows 8 nt + 2t and + 1) and writes the
// block's outputs for the m x rows; called by every thread after the stream.
template <bool kSilu, int W, int NT, int RT>
__device__ __forceinline__ void ReduceAndStore(float* partial, const float (&acc)[RT][NT][4],
                                               const bf16* __restrict__ bias, void* __restrict__ out, bool out_fp32,
                                               int n, int m) {
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        partial[(((r * NT + nt) * W + warp) * 32 + (threadIdx.x & 31)) * 4 + j] = acc[r][nt][j];
      }
    }
  }
  __syncthreads();
  // Column c of row tile r: x row c, held by lane (g, t = c % 8 / 2) of column tile c / 8.
  auto total = [&](int r, int c, int g, int j) {
    const int nt = c / 8, t = c % 8 / 2;
    float v = 0.0f;
#pragma unroll
    for (int i = 0; i < W; ++i) v += partial[(((r * NT + nt) * W + i) * 32 + g * 4 + t) * 4 + j];
    return v;
  };
  if constexpr (kSilu) {
    // Output (x row c, column g of row tile r): gate in acc[0..1], up in acc[2..3].
    for (int idx = threadIdx.x; idx < 64 * NT * RT; idx += W * 32) {
      const int g = idx & 7, c = (idx >> 3) % (8 * NT), r = (idx >> 3) / (8 * NT);
      const int col = (static_cast<int>(blockIdx.x) * RT + r) * 8 + g;
      if (c >= m || col >= n) continue;
      static_cast<bf16*>(out)[static_cast<size_t>(c) * n + col] =
          SiluMulRounded(total(r, c, g, c % 2), total(r, c, g, 2 + c % 2));
    }
  } else {
    // Output (x row c, row i of row tile r): rows g in acc[0..1], g + 8 in acc[2..3].
    for (int idx = threadIdx.x; idx < 128 * NT * RT; idx += W * 32) {
      const int i = idx & 15, c = (idx >> 4) % (8 * NT), r = (idx >> 4) / (8 * NT);
      const int row = (static_cast<int>(blockIdx.x) * RT + r) * 16 + i;
      if (c >= m || row >= n) continue;
      const float b = bias != nullptr ? __bfloat162float(bias[row]) : 0.0f;
      StoreOut(out, out_fp32, static_cast<size_t>(c) * n + row, total(r, c, i % 8, (i / 8) * 2 + c % 2) + b);
    }
  }
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMV_INT_MMA_TILE_CUH_
