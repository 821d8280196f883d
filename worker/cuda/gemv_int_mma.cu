#include "worker/cuda/gemv_int_mma.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int_mma_tile.cuh"
#include "worker/cuda/int_layout.cuh"
#include "worker/cuda/pdl.cuh"

// Why tensor cores for a GEMV: dequantizing a code into an fp32 FMA costs
// ~3.5 instructions per weight (gemv_int.cu's scalar kernel), which at two
// int4 weights per byte keeps the GEMV issue-bound near half the copy
// bandwidth. Here a code becomes a bf16 with one LOP3 per two codes
// ((w >> 4s) & 0x000F000F | 0x43004300 is the bf16 pair 128 + q), the zero
// point is subtracted exactly in bf16 (128 + zero <= 144 and q - zero are
// small integers), and one mma.m16n8k16 multiplies 16 weight rows by the 16
// matching inputs of up to 8 x rows in the narrow n dimension (up to four such
// column tiles a kernel, 32 rows, sharing the dequantized codes),
// accumulating in fp32. The products (q - zero) * x are exact; the group
// scale multiplies each tile's fp32 sums. The result differs from the scalar
// kernel only by fp32 summation order. int8 at one or two rows stays on the
// scalar kernels (above that it takes Int8Tile's nibble pairs here): the
// same scheme (each byte PRMT-ed into the mantissa of 2^23, the zero point
// subtracted in fp32, the two upper halves packed into a bf16 pair) measured
// slower there (7B int8 batch 1: 4.01 ms a step against 3.72, one H200,
// 2026-12-01 04:07 UTC), and so did splitting each byte into two nibbles on
// this kernel (3.73 against 3.24 for the scalar kernel after both lost their
// per-chunk bookkeeping, 14:33 UTC). Taking the zero point off each tile's
// sums as (128 + zero) * sum(x) instead of off every code pair (one fewer
// instruction a pair, a per-warp sum(x) table) measured slower too: int4
// 2.62 against 2.51 ms (14:37 UTC).
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

// Warps of a block share its row tiles and split k between them (a
// 3,584-input row is 28 int4 tiles; without the split the 224-288 row tiles
// of the 7B model's qkv / o_proj / down would leave most SMs idle); their
// sums meet in shared memory. A block takes RT row tiles: each warp streams
// all of them over its share of k, so that x, read once a k tile, serves RT
// weight tiles. S stages: tiles a warp has in flight (+1 being computed).

// Rows of x one column tile of the mma takes: its n dimension; a kernel takes
// up to four tiles.
constexpr int kMmaColumns = 8;
static_assert(kGemvIntMmaMaxRows == 4 * kMmaColumns);

// What one lane streams: the 16-byte chunk t of its two rows in each of the
// block's RT row tiles at its warp's first k tile and how many chunks further
// each next k tile's lies (4 row by row; 64 tiled, where the warp's 32 lanes
// read one 512-byte span a row half), where the rows' scales and zero points
// start, its warp's share [begin, end) of the k tiles (W
// warps split them), the group of its first tile and how many tiles of that
// group are left (a group spans `per` tiles), and its x row at its warp's
// first input (x is read only after PdlWait()).
template <int RT>
struct LaneStream {
  const uint4* pa[RT];
  const uint4* pb[RT];
  const float* sa[RT];
  const float* sb[RT];
  const uint16_t* za[RT];
  const uint16_t* zb[RT];
  int stride;
  int begin, end;
  int group, left, per;
  const bf16* x;
};

template <int BITS, bool kSilu, int W, int RT>
__device__ __forceinline__ LaneStream<RT> MakeLaneStream(const bf16* x, const IntWeightView& w, int n, int k, int m) {
  constexpr int kIn = TileInputs<BITS>();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int chunks = k * BITS / 128, groups = k / w.group, tiles = k / kIn;
  LaneStream<RT> s;
  s.begin = warp * tiles / W;
  s.end = (warp + 1) * tiles / W;
  s.stride = IntTileStride(w.tiled);
#pragma unroll
  for (int r = 0; r < RT; ++r) {
    int ra, rb;
    TileRows<kSilu>(n, static_cast<int>(blockIdx.x) * RT + r, g, ra, rb);
    s.pa[r] = reinterpret_cast<const uint4*>(w.codes) + IntChunkIndex(w.tiled, ra, t, chunks) + s.stride * s.begin;
    s.pb[r] = reinterpret_cast<const uint4*>(w.codes) + IntChunkIndex(w.tiled, rb, t, chunks) + s.stride * s.begin;
    s.sa[r] = w.scale + static_cast<size_t>(ra) * groups;
    s.sb[r] = w.scale + static_cast<size_t>(rb) * groups;
    s.za[r] = w.zero + static_cast<size_t>(ra) * groups;
    s.zb[r] = w.zero + static_cast<size_t>(rb) * groups;
  }
  s.per = w.group / kIn;
  s.group = s.begin / s.per;
  s.left = s.per - s.begin % s.per;
  s.x = x + static_cast<size_t>(min(g, m - 1)) * k + t * (kIn / 4) + s.begin * kIn;  // column g: x row g
  return s;
}

// The codes go to shared memory with cp.async, S - 1 k tiles a warp ahead,
// so that the bytes in flight are not bounded by registers (a register
// pipeline with three tiles a warp in flight streamed the 7B int4 step at
// ~1.9 TB/s and measured slower in two calls, sixth session); scales and zero
// points (6 bytes a row and group) ride in a register ring of the same depth,
// x one tile ahead in two alternating buffers. Each lane reads back only what
// it copied, so no barrier is needed until the reduction. W warps split k;
// dynamic shared memory W * S * RT KB. The loop is what bounds the kernel (it
// issues near one instruction a cycle on the H200), so its per-tile
// bookkeeping is kept to pointer increments and a running group index, and
// the stages are addressed as shared memory directly. kSilu: n is `inter`,
// rows g are gate rows and rows g + 8 the matching up rows, and a row tile
// writes 8 activations; otherwise 16 output rows. NT column tiles of 8 x
// rows each (m <= 8 NT); with one tile M is 1 (only the accumulators of x row
// 0 are kept), 2, or 8, and x is loaded a tile ahead; with more, a tile's x
// is loaded as it is used (NT x 16 registers a buffer).
template <int BITS, int M, bool kSilu, int W, int NT, int RT, int S>
__global__ void __launch_bounds__(W * 32)
    GemvIntAsyncKernel(const bf16* __restrict__ x, IntWeightView w, const bf16* __restrict__ bias,
                       void* __restrict__ out, bool out_fp32, int n, int k, int m) {
  constexpr int kIn = TileInputs<BITS>();
  static_assert(S % 2 == 0, "x alternates between two buffers across the unrolled stages");
  static_assert(2 * S >= NT, "the reduction's scratch fits in the stages");
  extern __shared__ uint4 stage[];  // [W][S][RT][2 rows][32 lanes]
  LaneStream<RT> ls = MakeLaneStream<BITS, kSilu, W, RT>(x, w, n, k, m);
  const int end = ls.end;
  const uint32_t mine = SmemAddress(stage + (threadIdx.x >> 5) * S * RT * 64 + (threadIdx.x & 31));
  float sa[S][RT], sb[S][RT];
  uint32_t zs[S][RT];  // zero of row g | zero of row g + 8 << 16
  // Requests k tile `next` of every row tile into stage u and moves on to the
  // next. Always commits a group (empty past the end) so that wait_group
  // counts tiles.
  int next = ls.begin;
  auto issue = [&](int u) {
    if (next < end) {
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        CpAsync16(mine + (u * RT + r) * 1024, ls.pa[r]);
        CpAsync16(mine + (u * RT + r) * 1024 + 512, ls.pb[r]);
        ls.pa[r] += ls.stride;
        ls.pb[r] += ls.stride;
        sa[u][r] = __ldg(ls.sa[r] + ls.group);
        sb[u][r] = __ldg(ls.sb[r] + ls.group);
        zs[u][r] = static_cast<uint32_t>(__ldg(ls.za[r] + ls.group)) | static_cast<uint32_t>(__ldg(ls.zb[r] + ls.group))
                                                                             << 16;
      }
      if (--ls.left == 0) {
        ls.left = ls.per;
        ++ls.group;
      }
    }
    ++next;
    CpAsyncCommit();
  };
#pragma unroll
  for (int u = 0; u < S - 1; ++u) issue(u);
  PdlWait();  // weights only so far
  PdlTrigger();
  const bf16* xr = ls.x;
  // Offsets of tile nt's x row from tile 0's (x row min(8 nt + g, m - 1)).
  int xo[NT];
  const int g = (threadIdx.x & 31) >> 2;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xo[nt] = (min(8 * nt + g, m - 1) - min(g, m - 1)) * k;
  float acc[RT][NT][4];
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[r][nt][0] = acc[r][nt][1] = acc[r][nt][2] = acc[r][nt][3] = 0.0f;
  }
  uint4 xb[NT == 1 ? 2 : 1][NT][TileX<BITS>()];
  if (NT == 1 && ls.begin < end) LoadX<BITS>(xr, xb[0][0]);
  for (int base = ls.begin; base < end; base += S) {
#pragma unroll
    for (int u = 0; u < S; ++u) {
      if (base + u < end) {  // warp-uniform
        issue((u + S - 1) % S);
        CpAsyncWait<S - 1>();  // this tile's group has landed
        if constexpr (NT == 1) {
          xr += kIn;
          if (base + u + 1 < end) LoadX<BITS>(xr, xb[(u + 1) % 2][0]);
        } else {
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) LoadX<BITS>(xr + xo[nt], xb[0][nt]);
          xr += kIn;
        }
#pragma unroll
        for (int r = 0; r < RT; ++r) {
          const uint4 wa = LdShared16(mine + (u * RT + r) * 1024), wb = LdShared16(mine + (u * RT + r) * 1024 + 512);
          if constexpr (NT == 1) {
            TileDot<BITS, M, 1>(wa, wb, sa[u][r], sb[u][r], zs[u][r], xb[u % 2], acc[r]);
          } else {
            TileDot<BITS, 8, NT>(wa, wb, sa[u][r], sb[u][r], zs[u][r], xb[0], acc[r]);
          }
        }
      }
    }
  }
  CpAsyncWait<0>();
  __syncthreads();  // the stages become the reduction's scratch
  ReduceAndStore<kSilu, W, NT, RT>(reinterpret_cast<float*>(stage), acc, bias, out, out_fp32, n, m);
}

// TPSERVE_GEMV_INT_MMA=0 (read once, for A/B runs): gemv_int.cu's scalar
// kernels for every weight.
bool TensorCoresOn() {
  static const bool on = EnvSwitch("TPSERVE_GEMV_INT_MMA", true);
  return on;
}

// How many blocks of a GemvIntAsyncKernel the GPU holds at once (its SMs
// times the blocks an SM fits with the kernel's registers and stages);
// computed once per instantiation.
template <int BITS, int M, bool kSilu, int W, int NT, int RT, int S>
int ResidentBlocks() {
  static const int blocks = [] {
    int device = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, GemvIntAsyncKernel<BITS, M, kSilu, W, NT, RT, S>,
                                                      W * 32, W * S * RT * 1024) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return sms * per_sm;
  }();
  return blocks;
}

template <int BITS, int M, bool kSilu, int W, int NT, int RT, int S>
absl::Status LaunchWarps(dim3 grid, const bf16* x, const IntWeightView& w, const bf16* bias, void* out,
                         bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvIntAsyncKernel<BITS, M, kSilu, W, NT, RT, S>, grid, dim3(W * 32), W * S * RT * 1024,
                          stream, x, w, bias, out, out_fp32, n, k, m));
  return absl::OkStatus();
}

// The warps a block (k split that many ways) for the one-column-tile grids
// (up to 8 rows of x) that exceed one resident wave of 4-warp blocks -- the
// 7B gate_up's 2,368 row tiles: 7 k tiles a warp with 4 warps, so each
// warp's pipeline fills and drains every 7 tiles. int4: 2. 7B AWQ on one
// H200, 2026-12-01 ~18:15 UTC, ms a step, two rounds at batch 1 / 2 / 8:
// 4 warps 2.297 2.276 / 2.391 2.364 / 2.766 2.764; 2 warps 2.274 2.270 /
// 2.354 2.363 / 2.744 2.741; 1 warp 2.308 2.322 / 2.391 2.413 / 2.806 2.809.
// int8 (3-8 rows; not measured) keeps 4. For A/B runs (read once):
// TPSERVE_GEMV_INT_MANY_WARPS = 1, 2 or 4 sets it for both formats, and
// TPSERVE_GEMV_INT_WARPS_ALL=1 applies it to every one-column-tile grid, so
// that gemv_int_test's small shapes run the 1- and 2-warp kernels too.
template <int BITS>
int ManyTileWarps() {
  static const int forced = [] {
    const int v = EnvIntInRange("TPSERVE_GEMV_INT_MANY_WARPS", 1, 4, 0);
    return v == 3 ? 0 : v;
  }();
  return forced != 0 ? forced : (BITS == 4 ? 2 : 4);
}

bool WarpsForAll() {
  static const bool all = EnvSwitch("TPSERVE_GEMV_INT_WARPS_ALL", false);
  return all;
}

template <int BITS, int M, bool kSilu, int NT, int RT, int S>
absl::Status LaunchShaped(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m,
                          int n, int k, cudaStream_t stream) {
  const int rows_per_tile = kSilu ? 8 : 16;
  const int tiles = (n + rows_per_tile - 1) / rows_per_tile;
  const dim3 grid((tiles + RT - 1) / RT);
  // Few blocks (the 7B o_proj and down: 224 row tiles): split k 8 ways so
  // that every SM streams, as long as the whole grid is resident at once --
  // past that a second wave costs more than the split saves (the 7B qkv's 288
  // tiles: 7.25 us a layer in 8-warp blocks, 5.02 in 4-warp ones; step
  // 2.31-2.34 -> 2.27 ms, H200, 2026-12-01 15:00 UTC).
  const bool all = NT == 1 && RT == 1 && WarpsForAll();
  if (!all && static_cast<int>(grid.x) <= ResidentBlocks<BITS, M, kSilu, 8, NT, RT, S>()) {
    return LaunchWarps<BITS, M, kSilu, 8, NT, RT, S>(grid, x, w, bias, out, out_fp32, m, n, k, stream);
  }
  if constexpr (NT == 1 && RT == 1) {
    if (all || static_cast<int>(grid.x) > ResidentBlocks<BITS, M, kSilu, 4, NT, RT, S>()) {
      switch (ManyTileWarps<BITS>()) {
        case 1: return LaunchWarps<BITS, M, kSilu, 1, NT, RT, S>(grid, x, w, bias, out, out_fp32, m, n, k, stream);
        case 2: return LaunchWarps<BITS, M, kSilu, 2, NT, RT, S>(grid, x, w, bias, out, out_fp32, m, n, k, stream);
        default: break;
      }
    }
  }
  return LaunchWarps<BITS, M, kSilu, 4, NT, RT, S>(grid, x, w, bias, out, out_fp32, m, n, k, stream);
}

// With two or four column tiles (9-32 rows of x) an int4 block takes two
// row tiles, so that each x load serves two weight tiles, in four stages.
// H200, 2026-12-01, ms a step: 7B AWQ batch 32 6.19 -> 5.60, batch 16 3.96
// -> 3.99; 72B AWQ batch 16 35.3 -> 25.5, batch 32 63.6 -> 36.7 (17:14 and
// 17:16 UTC). int8 keeps one tile a block (72B GPTQ int8 batch 16: 40.7 ms
// with one, 45.6 with two; batch 32 equal), and so does one column tile.
template <int BITS, int M, bool kSilu, int NT>
absl::Status Launch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                    int k, cudaStream_t stream) {
  if constexpr (NT > 1 && BITS == 4) {
    return LaunchShaped<BITS, M, kSilu, NT, 2, 4>(x, w, bias, out, out_fp32, m, n, k, stream);
  } else {
    return LaunchShaped<BITS, M, kSilu, NT, 1, 6>(x, w, bias, out, out_fp32, m, n, k, stream);
  }
}

// x's rows are the mma's columns: one tile of 8 up to 8 rows, two up to 16,
// four up to 32, with the codes dequantized once for all of them (7B AWQ on
// one H200, 2026-12-01 15:17 UTC, ms a step at batch 16 / 32: passes of 8
// rows 4.70 / 8.44, two tiles 4.01 / 7.18, four tiles 5.04 / 6.19).
template <int BITS, bool kSilu>
absl::Status LaunchColumnTiles(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32,
                               int m, int n, int k, cudaStream_t stream) {
  if (m <= kMmaColumns) return Launch<BITS, 8, kSilu, 1>(x, w, bias, out, out_fp32, m, n, k, stream);
  if (m <= 2 * kMmaColumns) return Launch<BITS, 8, kSilu, 2>(x, w, bias, out, out_fp32, m, n, k, stream);
  return Launch<BITS, 8, kSilu, 4>(x, w, bias, out, out_fp32, m, n, k, stream);
}

template <bool kSilu>
absl::Status Dispatch(const bf16* x, const IntWeightView& w, const bf16* bias, void* out, bool out_fp32, int m, int n,
                      int k, cudaStream_t stream) {
  if (w.bits != 4 && w.bits != 8) {
    return absl::InvalidArgumentError(absl::StrCat("GemvIntMma: int4 or int8, not ", w.bits, " bits"));
  }
  const int least = w.bits == 8 ? kGemvIntMaxRows + 1 : 1, most = GemvIntMmaMaxRows(w.bits);
  if (m < least || m > most) {
    return absl::InvalidArgumentError(absl::StrCat(kSilu ? "GemvIntSiluMul" : "GemvInt", ": int", w.bits,
                                                   " on the tensor cores takes ", least, " to ", most,
                                                   " rows, not ", m));
  }
  if (m > kGemvIntMmaMaxRows) {
    // int4 above 32 rows: two even passes (x's and out's rows are
    // independent; 33 rows are 17 + 16), each streaming the weights again.
    // Against dequantize + cuBLASLt, ms a decode step (one H200, 2026-12-01
    // ~18:15 UTC, prompt 128, 64 new tokens), batch 40 / 48 / 64: 7B AWQ
    // 10.957 -> 9.638 / 10.988 -> 9.674 / 11.257 -> 10.392; 72B AWQ 98.781
    // -> 65.372 at 40, 115.090 -> 69.736 at 64. The same passes for int8
    // measured slower but for 72B at 64 -- 7B GPTQ 10.430 -> 10.866 / 10.504
    // -> 10.900 / 10.795 -> 11.584, 72B GPTQ 95.628 -> 104.901 at 40,
    // 114.629 -> 107.997 at 64 -- so int8 stops at 32 rows.
    static_assert(kGemvInt4MmaMaxRows <= 2 * kGemvIntMmaMaxRows);
    const int first = (m + 1) / 2;
    const size_t out_row_bytes = static_cast<size_t>(n) * (out_fp32 ? 4 : 2);
    if (absl::Status s = Dispatch<kSilu>(x, w, bias, out, out_fp32, first, n, k, stream); !s.ok()) return s;
    return Dispatch<kSilu>(x + static_cast<size_t>(first) * k, w, bias, static_cast<char*>(out) + first * out_row_bytes,
                           out_fp32, m - first, n, k, stream);
  }
  if (w.bits == 8) return LaunchColumnTiles<8, kSilu>(x, w, bias, out, out_fp32, m, n, k, stream);
  // One or two rows keep only the accumulators they use.
  if (m == 1) return Launch<4, 1, kSilu, 1>(x, w, bias, out, out_fp32, m, n, k, stream);
  if (m == 2) return Launch<4, 2, kSilu, 1>(x, w, bias, out, out_fp32, m, n, k, stream);
  return LaunchColumnTiles<4, kSilu>(x, w, bias, out, out_fp32, m, n, k, stream);
}

}  // namespace

bool GemvIntMmaTakes(const IntWeightView& w, int m) {
  if (!TensorCoresOn()) return false;
  if (w.bits == 4) return w.group % TileInputs<4>() == 0;
  return w.bits == 8 && w.group % TileInputs<8>() == 0 && m > kGemvIntMaxRows;
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
