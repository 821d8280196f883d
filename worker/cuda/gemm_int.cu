#include "worker/cuda/gemm_int.h"

#include <cuda_bf16.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemm_int_tile.cuh"
#include "worker/cuda/int_layout.cuh"
#include "worker/cuda/pdl.cuh"

// A block computes 64 weight rows (four 16-row tiles; with SiLU·mul four
// tiles of 8 gate + 8 up rows, 32 activations) by 64 rows of x. Its four
// warps are 2 x 2: each takes two row tiles (the mma's M, weights) and 32 x
// rows (four 8-column tiles, the mma's N), so each code it dequantizes feeds
// four mma columns and each x fragment two row tiles. The k loop goes by
// tiles of the GEMV's shape (128 int4 / 64 int8 inputs, 16 rows x 64 bytes
// of codes a row tile) through S shared-memory stages filled with cp.async,
// codes and x together. Codes become exact bf16 values of q - zero as in the
// GEMV: int4 with gemv_int_mma_tile.cuh's Int4Pair (one LOP3 and one bf16 FMA
// a pair), int8 through the mantissa of 2^23 (one PRMT and one FADD a code,
// |q - zero| <= 256 is exact in bf16); the fp32 sums of a k tile are then
// scaled by its group's scale (a tile never spans two groups). The lane
// order of inputs inside a tile is the GEMV's: lane (g, t) holds its quad's
// 32 (int4) or 16 (int8) consecutive inputs, fed to the mma in the order its
// registers hold them, x's pairs built to match.
namespace tpserve::worker::cuda {
namespace gemm_int {
namespace {

template <int BITS, bool kSilu>
__global__ void __launch_bounds__(kThreads, 3)
    GemmIntKernel(const bf16* __restrict__ x, IntWeightView w, const bf16* __restrict__ bias, void* __restrict__ out,
                  bool out_fp32, float* __restrict__ partial, int n, int k, int m) {
  constexpr int kIn = TileInputs<BITS>(), S = Stages<BITS>(), kSegs = kIn / 8;
  constexpr int kXPass = kThreads / kSegs;  // x rows one pass of the block's copies covers
  extern __shared__ uint4 smem[];
  const uint32_t base = SmemAddress(smem);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int wr = warp & 1, wc = warp >> 1;
  const int chunks = k * BITS / 128, groups = k / w.group, per = w.group / kIn;
  // x blocks on the grid's x: the blocks of one weight tile run side by side,
  // so that its codes come from DRAM once and from L2 for the rest.
  const int tile0 = static_cast<int>(blockIdx.y) * kRowTiles, m0 = static_cast<int>(blockIdx.x) * kXRows;
  // This block's share of the k tiles (split k: gridDim.z > 1, sums to `partial`).
  const int begin = static_cast<int>(blockIdx.z) * (k / kIn) / gridDim.z;
  const int tiles = (static_cast<int>(blockIdx.z) + 1) * (k / kIn) / gridDim.z - begin;

  // Copies: two 16-byte chunks of codes a thread (row tile tid / 64 and + 2,
  // row tid / 4 % 16, chunk tid % 4 of the k tile) and kXRows / kXPass
  // segments of x (rows tid / kSegs + kXPass i, segment tid % kSegs).
  const uint4* code_src[2];
  uint32_t code_dst[2];
  const int stride = IntTileStride(w.tiled);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int c = tid + kThreads * i, rt = c >> 6, ri = (c >> 2) & 15, ch = c & 3;
    code_src[i] = reinterpret_cast<const uint4*>(w.codes) +
                  IntChunkIndex(w.tiled, TileRow<kSilu>(tile0 + rt, ri, n), ch, chunks) + stride * begin;
    code_dst[i] = rt * 1024 + ri * 64 + ch * 16;
  }
  const int xr = tid / kSegs, xj = tid % kSegs;
  const bf16* x_src = x + static_cast<size_t>(min(m0 + xr, m - 1)) * k + begin * kIn + xj * 8;
  const uint32_t x_dst = kCodeStageBytes + xr * XRowBytes<BITS>() + XSlot(xr, xj) * 16;
  auto issue_codes = [&](int u) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      CpAsync16(base + u * StageBytes<BITS>() + code_dst[i], code_src[i]);
      code_src[i] += stride;
    }
  };
  auto issue_x = [&](int kt, int u) {
#pragma unroll
    for (int i = 0; i < kXRows / kXPass; ++i) {
      const bool valid = m0 + xr + kXPass * i < m;
      const bf16* src = valid ? x_src + static_cast<size_t>(kXPass * i) * k + kt * kIn : x;
      CpAsync16(base + u * StageBytes<BITS>() + x_dst + i * kXPass * XRowBytes<BITS>(), src, valid);
    }
  };

  // This lane's rows (g and g + 8 of each of its warp's row tiles): their
  // scales and zero points, fetched a k tile ahead.
  int row_off[kWarpRowTiles][2];
#pragma unroll
  for (int r = 0; r < kWarpRowTiles; ++r) {
    row_off[r][0] = TileRow<kSilu>(tile0 + 2 * wr + r, g, n) * groups;
    row_off[r][1] = TileRow<kSilu>(tile0 + 2 * wr + r, g + 8, n) * groups;
  }
  // Two register sets of them, used alternately (the k loop is unrolled by
  // two), so that a set's loads land while the other set's tile is computed
  // -- a register copy from one set to the next would wait for the loads.
  using Scales = float[kWarpRowTiles][2];
  using Zeros = uint32_t[kWarpRowTiles][2];
  auto fetch_group = [&](int group, Scales& s, Zeros& z) {
#pragma unroll
    for (int r = 0; r < kWarpRowTiles; ++r) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        s[r][h] = __ldg(w.scale + row_off[r][h] + group);
        z[r][h] = __ldg(w.zero + row_off[r][h] + group);
      }
    }
  };

  // Codes depend on nothing earlier in the step: request them before the wait.
#pragma unroll
  for (int u = 0; u < S - 1; ++u) {
    if (u < tiles) issue_codes(u);
  }
  PdlWait();
#pragma unroll
  for (int u = 0; u < S - 1; ++u) {
    if (u < tiles) issue_x(u, u);
    CpAsyncCommit();
  }
  Scales s0, s1;
  Zeros z0, z1;
  fetch_group(begin / per, s0, z0);

  float acc[kWarpRowTiles][kWarpColTiles][4];
#pragma unroll
  for (int r = 0; r < kWarpRowTiles; ++r) {
#pragma unroll
    for (int nt = 0; nt < kWarpColTiles; ++nt) acc[r][nt][0] = acc[r][nt][1] = acc[r][nt][2] = acc[r][nt][3] = 0.0f;
  }
  const uint32_t lane_codes = (2 * wr) * 1024 + g * 64 + t * 16;
  int next_group = begin / per, left = per - begin % per;  // the group of tile kt + 1, and tiles of it left
  // Tile kt with its scales and zero points in (s, z); fetches tile kt + 1's into (sn, zn).
  auto step = [&](int kt, const Scales& s, const Zeros& z, Scales& sn, Zeros& zn) {
    CpAsyncWait<S - 2>();
    __syncthreads();  // tile kt has landed for every thread; stage (kt - 1) % S is free
    const int fill = kt + S - 1;
    if (fill < tiles) {
      issue_codes(fill % S);
      issue_x(fill, fill % S);
    }
    CpAsyncCommit();
    if (--left == 0) {
      left = per;
      ++next_group;
    }
    if (kt + 1 < tiles) fetch_group(next_group, sn, zn);
    uint32_t nz[kWarpRowTiles][2];
    float negz[kWarpRowTiles][2];
#pragma unroll
    for (int r = 0; r < kWarpRowTiles; ++r) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        nz[r][h] = NegZeroPair(z[r][h]);
        negz[r][h] = -(8388608.0f + static_cast<float>(z[r][h]));
      }
    }
    float c[kWarpRowTiles][kWarpColTiles][4];
#pragma unroll
    for (int r = 0; r < kWarpRowTiles; ++r) {
#pragma unroll
      for (int nt = 0; nt < kWarpColTiles; ++nt) c[r][nt][0] = c[r][nt][1] = c[r][nt][2] = c[r][nt][3] = 0.0f;
    }
    const uint32_t stage = base + (kt % S) * StageBytes<BITS>();
    StageDot<BITS>(stage + lane_codes, stage + kCodeStageBytes, wc * kWarpColTiles * 8, nz, negz, c);
#pragma unroll
    for (int r = 0; r < kWarpRowTiles; ++r) {
#pragma unroll
      for (int nt = 0; nt < kWarpColTiles; ++nt) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[r][nt][j] = fmaf(c[r][nt][j], s[r][j >> 1], acc[r][nt][j]);
      }
    }
  };
  for (int kt = 0; kt < tiles; kt += 2) {
    step(kt, s0, z0, s1, z1);
    if (kt + 1 < tiles) step(kt + 1, s1, z1, s0, z0);
  }
  CpAsyncWait<0>();

  // acc[r][nt][j]: weight row g + 8 (j / 2) of row tile r, x row 2t + j % 2
  // of column tile nt. Split k: this block's sums to its slice of `partial`
  // ([split][m][n], SiLU·mul [split][m][2 n], gate sums then up sums), which
  // GemmIntReduceKernel adds up.
  const int out_n = kSilu ? 2 * n : n;
  float* slice = partial != nullptr ? partial + static_cast<size_t>(blockIdx.z) * m * out_n : nullptr;
#pragma unroll
  for (int r = 0; r < kWarpRowTiles; ++r) {
    const int tile = tile0 + 2 * wr + r;
#pragma unroll
    for (int nt = 0; nt < kWarpColTiles; ++nt) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int xrow = m0 + wc * kWarpColTiles * 8 + nt * 8 + 2 * t + j;
        if (xrow >= m) continue;
        if constexpr (kSilu) {
          const int col = tile * 8 + g;
          if (col >= n) continue;
          if (slice != nullptr) {
            slice[static_cast<size_t>(xrow) * out_n + col] = acc[r][nt][j];
            slice[static_cast<size_t>(xrow) * out_n + n + col] = acc[r][nt][2 + j];
          } else {
            static_cast<bf16*>(out)[static_cast<size_t>(xrow) * n + col] =
                SiluMulRounded(acc[r][nt][j], acc[r][nt][2 + j]);
          }
        } else {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = tile * 16 + g + 8 * h;
            if (row >= n) continue;
            if (slice != nullptr) {
              slice[static_cast<size_t>(xrow) * n + row] = acc[r][nt][2 * h + j];
            } else {
              const float b = bias != nullptr ? __bfloat162float(bias[row]) : 0.0f;
              StoreOut(out, out_fp32, static_cast<size_t>(xrow) * n + row, acc[r][nt][2 * h + j] + b);
            }
          }
        }
      }
    }
  }
}

// out = the sum of the split-k slices (in split order) + bias, or SiLU·mul of
// the gate and up sums; one thread an output.
template <bool kSilu>
__global__ void GemmIntReduceKernel(const float* __restrict__ partial, int splits, const bf16* __restrict__ bias,
                                    void* __restrict__ out, bool out_fp32, int n, int m) {
  PdlWait();
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(m) * n) return;
  const size_t row = i / n, col = i % n, out_n = kSilu ? 2 * static_cast<size_t>(n) : n;
  const size_t slice = static_cast<size_t>(m) * out_n;
  float a = 0.0f, u = 0.0f;
  for (int s = 0; s < splits; ++s) {
    a += partial[s * slice + row * out_n + col];
    if constexpr (kSilu) u += partial[s * slice + row * out_n + n + col];
  }
  if constexpr (kSilu) {
    static_cast<bf16*>(out)[i] = SiluMulRounded(a, u);
  } else {
    StoreOut(out, out_fp32, i, a + (bias != nullptr ? __bfloat162float(bias[col]) : 0.0f));
  }
}

// How many blocks of the kernel the GPU holds at once; once per instantiation.
template <int BITS, bool kSilu>
int ResidentBlocks() {
  static const int blocks = [] {
    int device = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaFuncSetAttribute(GemmIntKernel<BITS, kSilu>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             SmemBytes<BITS>()) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, GemmIntKernel<BITS, kSilu>, kThreads,
                                                      SmemBytes<BITS>()) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return sms * per_sm;
  }();
  return blocks;
}

// Split k while the grid is under one resident wave (the 7B o_proj / down /
// qkv at up to 64 rows are 56-72 blocks of 64 weight rows: each would stream
// its whole k alone), each split keeping at least kMinSplitTiles k tiles, as
// the workspace allows. TPSERVE_GEMM_INT_SPLITS (read once) forces a count.
constexpr int kMaxSplits = 8, kMinSplitTiles = 4;

int Splits(int blocks, int resident, int tiles, size_t slice_floats, size_t workspace_floats) {
  static const int forced = EnvIntInRange("TPSERVE_GEMM_INT_SPLITS", 1, kMaxSplits, 0);
  int splits = forced != 0 ? forced : std::min((resident + blocks - 1) / std::max(blocks, 1), kMaxSplits);
  splits = std::min(splits, std::max(tiles / kMinSplitTiles, 1));
  while (splits > 1 && static_cast<size_t>(splits) * slice_floats > workspace_floats) --splits;
  return std::max(splits, 1);
}

template <int BITS, bool kSilu>
absl::Status Launch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                    int k, float* workspace, size_t workspace_floats, cudaStream_t stream) {
  // Per call: the attribute belongs to the current device's context.
  TP_CUDA_CHECK(cudaFuncSetAttribute(GemmIntKernel<BITS, kSilu>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     SmemBytes<BITS>()));
  const int row_tiles = (n + (kSilu ? 7 : 15)) / (kSilu ? 8 : 16);
  const int gx = (row_tiles + kRowTiles - 1) / kRowTiles, gy = (m + kXRows - 1) / kXRows;
  const size_t slice = static_cast<size_t>(m) * (kSilu ? 2 * n : n);
  const int splits = workspace == nullptr ? 1
                                          : Splits(gx * gy, ResidentBlocks<BITS, kSilu>(), k / TileInputs<BITS>(),
                                                   slice, workspace_floats);
  float* partial = splits > 1 ? workspace : nullptr;
  TP_CUDA_CHECK(LaunchPdl(GemmIntKernel<BITS, kSilu>, dim3(gy, gx, splits), dim3(kThreads), SmemBytes<BITS>(),
                          stream, x, w, bias, out, out_fp32, partial, n, k, m));
  if (splits > 1) {
    const int threads = 256;
    const int blocks = static_cast<int>((static_cast<size_t>(m) * n + threads - 1) / threads);
    TP_CUDA_CHECK(LaunchPdl(GemmIntReduceKernel<kSilu>, dim3(blocks), dim3(threads), 0, stream,
                            static_cast<const float*>(partial), splits, bias, out, out_fp32, n, m));
  }
  return absl::OkStatus();
}

bool On() {
  static const bool on = EnvSwitch("TPSERVE_GEMM_INT", true);
  return on;
}

template <bool kSilu>
absl::Status Dispatch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                      int k, float* workspace, size_t workspace_floats, cudaStream_t stream) {
  if (absl::Status s = CheckIntShape(w, kSilu ? 2 * n : n, k); !s.ok()) return s;
  if (m < 1 || !GemmIntFits(w)) {
    return absl::InvalidArgumentError(absl::StrCat(kSilu ? "GemmIntSiluMul" : "GemmInt", ": int", w.bits,
                                                   " weight (group ", w.group, w.perm != nullptr ? ", act order" : "",
                                                   ") at ", m, " rows is not the fused GEMM's"));
  }
  if (w.bits == 4) return Launch<4, kSilu>(x, w, bias, out, out_fp32, m, n, k, workspace, workspace_floats, stream);
  return Launch<8, kSilu>(x, w, bias, out, out_fp32, m, n, k, workspace, workspace_floats, stream);
}

}  // namespace
}  // namespace gemm_int

int GemmIntMinRows(const IntWeightView& w) {
  static const int forced = EnvIntInRange("TPSERVE_GEMM_INT_ROWS_MIN", 1, 1 << 20, 0);
  return forced != 0 ? forced : std::min(GemvIntRows(w), kGemvIntMmaMaxRows) + 1;
}

int GemmIntMaxRows(const IntWeightView& w) {
  static const int forced = EnvIntInRange("TPSERVE_GEMM_INT_ROWS_MAX", 1, 1 << 20, 0);
  return forced != 0 ? forced : GemmIntDefaultMaxRows(w.bits);
}

bool GemmIntFits(const IntWeightView& w) {
  if (!gemm_int::On() || w.perm != nullptr) return false;
  return w.bits == 4 ? w.group % TileInputs<4>() == 0 : w.bits == 8 && w.group % TileInputs<8>() == 0;
}

bool GemmIntTakes(const IntWeightView& w, int m) {
  return GemmIntFits(w) && m >= GemmIntMinRows(w) && m <= GemmIntMaxRows(w);
}

absl::Status GemmInt(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                     int k, float* workspace, size_t workspace_floats, cudaStream_t stream) {
  return gemm_int::Dispatch<false>(x, w, bias, out, out_fp32, m, n, k, workspace, workspace_floats, stream);
}

absl::Status GemmIntSiluMul(const bf16* x, const IntWeightView& w, bf16* out, int m, int inter, int k,
                            float* workspace, size_t workspace_floats, cudaStream_t stream) {
  return gemm_int::Dispatch<true>(x, w, nullptr, out, false, m, inter, k, workspace, workspace_floats, stream);
}

}  // namespace tpserve::worker::cuda
