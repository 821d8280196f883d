#include "worker/cuda/gemv_int.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int_mma.h"
#include "worker/cuda/int_layout.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

// Small blocks (as in gemv.cu: every block is resident at once, so balance
// decides the tail); each warp streams two weight rows, so every input
// value it converts serves both. Measured against one row per warp (H200,
// 7B shape, batch 1: int4 3.40 vs 4.20 ms per step, int8 3.76 vs 3.87; and
// one row with eight chunks in flight, int8 4.00 vs 3.80, tenth session) and
// against four rows per warp with one warp per block and the next round of
// loads requested before the current one is computed (163 registers, 12
// warps per SM: 3.47 and 4.11 ms).
constexpr int kWarpsPerBlock = 4;
constexpr int kRowsPerWarp = 2;
// 16-byte chunks of each row a lane keeps in flight.
constexpr int kLoads = 4;

// One 16-byte chunk of each of R rows (32 int4 or 16 int8 codes, all in one
// group since groups are multiples of 32) dotted with the same inputs of M
// rows of x: acc[r][m] += scale[r] * Σ_j (q_j - zero[r]) x[m, j].
//
// Dequantizing in registers costs integer work per code, and decode is
// only bandwidth bound while that stays small, so: a code stays at its bit
// position p within a 16-bit half word and is ORed into the mantissa of 2^23
// (one LOP3 per code, one shift per word), giving 2^23 + 2^(bits*p) q
// exactly; subtracting 2^23 + 2^(bits*p) zero leaves 2^(bits*p) (q - zero)
// exactly, and the per-position sums are brought back by exact powers of two
// at the end of the chunk. The inputs are converted once for all R rows.
template <int BITS, int M, int R>
__device__ __forceinline__ void Dot(const uint4 (&chunk)[R], const uint4* __restrict__ xq, int x_row,
                                    const float (&scale)[R], const int (&zero)[R], float (&acc)[R][M]) {
  constexpr int kPerWord = 32 / BITS, kPerChunk = 128 / BITS, kPos = 16 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  float zf[R][kPos];
  float part[R][kPos][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int p = 0; p < kPos; ++p) {
      // 2^23 + zero 2^(bits p) as float bits: zero <= 256, so below 2^23.
      zf[r][p] = __uint_as_float(kMagicBits | (static_cast<uint32_t>(zero[r]) << (BITS * p)));
#pragma unroll
      for (int m = 0; m < M; ++m) part[r][p][m] = 0.0f;
    }
  }
  uint4 xv[M][kPerChunk / 8];  // the chunk's inputs, 8 a piece
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int i = 0; i < kPerChunk / 8; ++i) xv[m][i] = __ldg(xq + m * x_row + i);
  }
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    float xf[M][kPerWord];
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4& v = xv[m][t * kPerWord / 8];
      const uint32_t xw[4] = {v.x, v.y, v.z, v.w};
      constexpr int kFirst = BITS == 4 ? 0 : 2;  // int8: word t takes half of a piece
#pragma unroll
      for (int i = 0; i < kPerWord / 2; ++i) {  // bf16 -> float: the upper 16 bits
        const uint32_t word = xw[(t % 2) * kFirst + i];
        xf[m][2 * i] = __uint_as_float(word << 16);
        xf[m][2 * i + 1] = __uint_as_float(word & 0xFFFF0000u);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint32_t word = t == 0 ? chunk[r].x : t == 1 ? chunk[r].y : t == 2 ? chunk[r].z : chunk[r].w;
      const uint32_t halves[2] = {word, word >> 16};
#pragma unroll
      for (int j = 0; j < kPerWord; ++j) {
        const int p = j % kPos;
        const float q = __uint_as_float(AndOr(halves[j / kPos], kMask << (BITS * p), kMagicBits)) - zf[r][p];
#pragma unroll
        for (int m = 0; m < M; ++m) part[r][p][m] = fmaf(q, xf[m][j], part[r][p][m]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float sum = part[r][0][m];
#pragma unroll
      for (int p = 1; p < kPos; ++p) sum = fmaf(part[r][p][m], 1.0f / static_cast<float>(1 << (BITS * p)), sum);
      acc[r][m] = fmaf(sum, scale[r], acc[r][m]);
    }
  }
}

// Streams R packed rows (one warp; lanes stride the rows in 16-byte chunks)
// into acc[r][m]. Each round requests L chunks of every row with their
// scales and zero points at once (predicated, so short rows -- int4 rows of
// 3,584 inputs are 112 chunks -- are not left to a serial tail); the first
// round is requested before PdlWait(), since weights do not depend on the
// previous kernel. The kernels issue near one instruction a cycle, so the
// per-chunk bookkeeping is pointer increments: a lane's next chunk of a row
// lies a fixed distance further in either layout, and its group is c >>
// shift when a group is a power-of-two number of chunks. kWhole: rows are
// whole multiples of 32 chunks (int8 rows of 3,584 and 18,944 inputs), so
// whether a chunk exists is the same for every lane and the loads are not in
// divergent code (where every load re-moves its memory descriptor into
// uniform registers).
// kRange: only chunks [c_begin, c_end) (c_begin a multiple of 32), else all.
template <int BITS, int M, int R, int L, bool kWhole, bool kRange>
__device__ __forceinline__ void StreamRowsIn(const IntWeightView& w, const int (&rows)[R], const bf16* __restrict__ x,
                                             int k, int range_begin, int range_end, float (&acc)[R][M]) {
  constexpr int kPerChunk = 128 / BITS, kXPieces = kPerChunk / 8;
  const int lane = threadIdx.x & 31;
  const int chunks = k / kPerChunk, groups = k / w.group, per_group = w.group / kPerChunk;
  const int c_begin = kRange ? range_begin : 0, c_end = kRange ? range_end : chunks;
  const int shift = (per_group & (per_group - 1)) == 0 ? __ffs(per_group) - 1 : -1;
  const int step = static_cast<int>(IntChunkIndex(w.tiled, 0, 32, chunks));  // chunk c to c + 32 of a row
  const uint4* wp[R];
  const float* sr[R];
  const uint16_t* zr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    wp[r] = reinterpret_cast<const uint4*>(w.codes) + IntChunkIndex(w.tiled, rows[r], c_begin + lane, chunks);
    sr[r] = w.scale + static_cast<size_t>(rows[r]) * groups;
    zr[r] = w.zero + static_cast<size_t>(rows[r]) * groups;
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.0f;
  }
  // Whether chunk first + lane + 32 u exists (first: lane 0's chunk of the round).
  auto exists = [&](int first, int u) {
    return kWhole ? first + 32 * u < c_end : first + lane + 32 * u < c_end;
  };
  uint4 wv[L][R];
  float sv[L][R];
  int zv[L][R];
  auto load = [&](int first) {  // one round, then every row pointer moves one round on
#pragma unroll
    for (int u = 0; u < L; ++u) {
      if (exists(first, u)) {
        const int c = first + lane + 32 * u;
        const int gi = shift >= 0 ? c >> shift : c / per_group;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          wv[u][r] = __ldcs(wp[r] + u * step);  // streamed once
          sv[u][r] = __ldg(sr[r] + gi);
          zv[u][r] = __ldg(zr[r] + gi);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) wp[r] += L * step;
  };
  int first = c_begin;
  load(first);
  PdlWait();
  PdlTrigger();
  const uint4* xq = reinterpret_cast<const uint4*>(x) + (c_begin + lane) * kXPieces;
  while (first < c_end) {
#pragma unroll
    for (int u = 0; u < L; ++u) {
      if (exists(first, u)) Dot<BITS, M, R>(wv[u], xq + 32 * u * kXPieces, k / 8, sv[u], zv[u], acc);
    }
    first += 32 * L;
    xq += 32 * L * kXPieces;
    if (first < c_end) load(first);
  }
}

// kRange: chunks [c_begin, c_end) of the rows (c_begin a multiple of 32),
// else all of them.
template <int BITS, int M, int R, int L, bool kRange = false>
__device__ __forceinline__ void StreamRows(const IntWeightView& w, const int (&rows)[R], const bf16* __restrict__ x,
                                           int k, float (&acc)[R][M], int c_begin = 0, int c_end = 0) {
  if ((k / (128 / BITS)) % 32 == 0) {
    StreamRowsIn<BITS, M, R, L, true, kRange>(w, rows, x, k, c_begin, c_end, acc);
  } else {
    StreamRowsIn<BITS, M, R, L, false, kRange>(w, rows, x, k, c_begin, c_end, acc);
  }
}

// KS: the warps that split each row pair's chunks (in whole 32-chunk
// rounds), their sums added in shared memory in split order.
template <int BITS, int M, int KS>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvIntKernel(const bf16* __restrict__ x, IntWeightView w, const bf16* __restrict__ bias, void* __restrict__ out,
                  bool out_fp32, int n, int k) {
  constexpr int R = kRowsPerWarp;
  static_assert(kWarpsPerBlock % KS == 0);
  __shared__ float part[kWarpsPerBlock][R][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, split = warp % KS;
  const int row = (blockIdx.x * (kWarpsPerBlock / KS) + warp / KS) * R;
  if (row >= n) {
    PdlWait();
    PdlTrigger();
    if constexpr (KS == 1) return;
  }
  // An odd last row streams twice and is written once.
  int rows[R] = {row};
#pragma unroll
  for (int r = 1; r < R; ++r) rows[r] = min(row + r, n - 1);
  float acc[R][M];
  if constexpr (KS == 1) {
    StreamRows<BITS, M, R, kLoads>(w, rows, x, k, acc);
  } else if (row < n) {
    const int rounds = (k / (128 / BITS) + 31) / 32, per = (rounds + KS - 1) / KS;
    StreamRows<BITS, M, R, kLoads, true>(w, rows, x, k, acc, 32 * min(split * per, rounds),
                                         min(32 * (split + 1) * per, k / (128 / BITS)));
  }
  if constexpr (KS > 1) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float v = row < n ? WarpSum(acc[r][m]) : 0.0f;
        if (lane == 0) part[warp][r][m] = v;
      }
    }
    __syncthreads();
    if (row >= n || split != 0) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float v = part[warp][r][m];
#pragma unroll
        for (int j = 1; j < KS; ++j) v += part[warp + j][r][m];
        acc[r][m] = v;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (row + r >= n) break;
    const float b = bias != nullptr ? __bfloat162float(bias[row + r]) : 0.0f;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = (KS > 1 ? acc[r][m] : WarpSum(acc[r][m])) + b;
      if (lane == 0) StoreOut(out, out_fp32, static_cast<size_t>(m) * n + row + r, v);
    }
  }
}

// Gate row i and up row inter + i streamed together; writes the activation.
template <int BITS, int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvIntSiluMulKernel(const bf16* __restrict__ x, IntWeightView w, bf16* __restrict__ out, int inter, int k) {
  const int lane = threadIdx.x & 31;
  const int col = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (col >= inter) {
    PdlWait();
    PdlTrigger();
    return;
  }
  const int rows[2] = {col, inter + col};
  float acc[2][M];
  StreamRows<BITS, M, 2, kLoads>(w, rows, x, k, acc);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float gate = WarpSum(acc[0][m]), up = WarpSum(acc[1][m]);
    if (lane == 0) out[static_cast<size_t>(m) * inter + col] = SiluMulRounded(gate, up);
  }
}

// Warps splitting each row pair's chunks in GemvIntKernel: four for one
// row of x over rows of at least 8,192 inputs (the 7B down's 448 blocks are
// under one wave of the 96-register kernel, each warp streaming 37 KB), one
// otherwise. H200, 2026-12-01, GPTQ int8, ms a step, two rounds: 7B batch
// 1 2.910 / 2.901 -> 2.832 / 2.834, 72B 23.98 -> 23.15 (21:41 UTC, against
// this kernel unsplit); at two rows four warps were no faster (3.44-3.46 ->
// 3.46-3.49) and two warps at one row neither (21:36). Splitting every
// shape measured no better in the twelfth session (branch int8-scalar-forms). TPSERVE_GEMV_INT_KSPLIT = 1, 2 or 4
// forces one for every GemvIntKernel launch (read once, for A/B runs).
int KSplit(int m, int k) {
  static const int forced = [] {
    const int v = EnvIntInRange("TPSERVE_GEMV_INT_KSPLIT", 0, 4, 0);
    return v == 3 ? 0 : v;
  }();
  if (forced != 0) return forced;
  return m == 1 && k >= 8192 ? 4 : 1;
}

template <int BITS, int M, int KS>
absl::Status LaunchGemvSplit(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int n,
                             int k, cudaStream_t stream) {
  const int warps = (n + kRowsPerWarp - 1) / kRowsPerWarp * KS;
  TP_CUDA_CHECK(LaunchPdl(GemvIntKernel<BITS, M, KS>, dim3((warps + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, bias, out, out_fp32, n, k));
  return absl::OkStatus();
}

template <int BITS, int M>
absl::Status LaunchGemv(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int n,
                        int k, cudaStream_t stream) {
  switch (KSplit(M, k)) {
    case 2: return LaunchGemvSplit<BITS, M, 2>(x, w, bias, out, out_fp32, n, k, stream);
    case 4: return LaunchGemvSplit<BITS, M, 4>(x, w, bias, out, out_fp32, n, k, stream);
    default: return LaunchGemvSplit<BITS, M, 1>(x, w, bias, out, out_fp32, n, k, stream);
  }
}

template <int BITS, int M>
absl::Status LaunchSiluMul(const bf16* x, const IntWeightView& w, bf16* out, int inter, int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvIntSiluMulKernel<BITS, M>, dim3((inter + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, out, inter, k));
  return absl::OkStatus();
}

template <int BITS>
absl::Status GemvRows(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m,
                      int n, int k, cudaStream_t stream) {
  switch (m) {
    case 1: return LaunchGemv<BITS, 1>(x, w, bias, out, out_fp32, n, k, stream);
    case 2: return LaunchGemv<BITS, 2>(x, w, bias, out, out_fp32, n, k, stream);
    default: return absl::InvalidArgumentError(absl::StrCat("GemvInt: 1 or 2 rows, not ", m));
  }
}

template <int BITS>
absl::Status SiluMulRows(const bf16* x, const IntWeightView& w, bf16* out, int m, int inter, int k,
                         cudaStream_t stream) {
  switch (m) {
    case 1: return LaunchSiluMul<BITS, 1>(x, w, out, inter, k, stream);
    case 2: return LaunchSiluMul<BITS, 2>(x, w, out, inter, k, stream);
    default: return absl::InvalidArgumentError(absl::StrCat("GemvIntSiluMul: 1 or 2 rows, not ", m));
  }
}

}  // namespace

absl::Status CheckIntShape(const IntWeightView& w, int n, int k) {
  if (w.bits != 4 && w.bits != 8) return absl::InvalidArgumentError(absl::StrCat("int weights: bits ", w.bits));
  if (n <= 0 || k <= 0 || k % 32 != 0 || w.group <= 0 || w.group % 32 != 0 || k % w.group != 0) {
    return absl::InvalidArgumentError(absl::StrCat("int weights [", n, ", ", k, "] with group ", w.group,
                                                   ": k and the group must be multiples of 32, the group "
                                                   "dividing k"));
  }
  if (w.codes == nullptr || w.scale == nullptr || w.zero == nullptr) {
    return absl::InvalidArgumentError("int weights: null codes, scales or zero points");
  }
  return absl::OkStatus();
}

int GemvIntRows(const IntWeightView& w) {
  return GemvIntMmaTakes(w, kGemvIntMmaMaxRows) ? GemvIntMmaMaxRows(w.bits) : kGemvIntMaxRows;
}

absl::Status GemvInt(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m,
                     int n, int k, cudaStream_t stream) {
  if (absl::Status s = CheckIntShape(w, n, k); !s.ok()) return s;
  if (GemvIntMmaTakes(w, m)) return GemvIntMma(x, w, bias, out, out_fp32, m, n, k, stream);
  return w.bits == 4 ? GemvRows<4>(x, w, bias, out, out_fp32, m, n, k, stream)
                     : GemvRows<8>(x, w, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvIntSiluMul(const bf16* x, const IntWeightView& w, bf16* out, int m, int inter, int k,
                            cudaStream_t stream) {
  if (absl::Status s = CheckIntShape(w, 2 * inter, k); !s.ok()) return s;
  if (GemvIntMmaTakes(w, m)) return GemvIntMmaSiluMul(x, w, out, m, inter, k, stream);
  return w.bits == 4 ? SiluMulRows<4>(x, w, out, m, inter, k, stream)
                     : SiluMulRows<8>(x, w, out, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
