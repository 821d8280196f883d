// Paged prefill attention on Hopper's warpgroup MMA (wgmma, sm_90a): the
// tiles and softmax of attention_prefill.cuh, with two MMA warpgroups of 64
// packed query rows each sharing 128-key K/V tiles, FlashAttention-3 style:
// a producer warpgroup (few registers, setmaxnreg) issues the paged K/V
// copies (cp.async) into three stages handed over through mbarriers, and the
// MMA warpgroups take turns issuing their MMAs (ping-pong on named barriers)
// so that one's softmax overlaps the other's tensor-core work. S = Q·Kᵀ reads
// Q and K straight from shared memory (K-major, 128-byte swizzle); O += P·V
// takes P from registers and V from shared memory as an MN-major operand, so
// no transposed copy of V is made. Chosen at run time by
// PagedPrefillAttention where a probe finds this code running (sm_90a machine
// code on an sm_90 device); everywhere else the kernel body is compiled out.
#include <map>
#include <mutex>

#include "worker/cuda/attention.h"
#include "worker/cuda/attention_prefill.cuh"
#include "worker/cuda/attention_prefill_sm90.cuh"
#include "worker/cuda/attention_prefill_sm90.h"
#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {
namespace {

using prefill::Params;
using prefill::Tile;

// ([[maybe_unused]]: only the kernel body reads them, and it is compiled out
// where there is no sm_90a code.)
constexpr int kWarpGroups = 2;  // MMA warpgroups
constexpr int kMmaThreads = 128 * kWarpGroups;
[[maybe_unused]] constexpr int kMmaWarps = kMmaThreads / 32;
constexpr int kThreads = kMmaThreads + 128;  // and a producer warpgroup issuing the K/V copies
// Registers per thread after setmaxnreg: the producer needs few, the MMA
// warpgroups' accumulators (O, S and P: 160 at head_dim 128) the rest
// (56 * 128 + 224 * 256 <= 64K).
[[maybe_unused]] constexpr int kProducerRegs = 56, kMmaRegs = 224;
constexpr int kKeyTile = 128;
constexpr int kStages = 3;  // K/V tiles in flight: the one read, the next, and the one loading
static_assert(kWarpGroups * 64 == kPrefillTileRows, "one m64 wgmma row block per warpgroup");
// Named barriers (0 is __syncthreads): Q in place for the MMA warpgroups, and
// the two "your turn" barriers of the ping-pong (kTurnBarrier + warpgroup).
[[maybe_unused]] constexpr int kQBarrier = 1, kTurnBarrier = 2;

template <int D>
constexpr int SmemBytes() {
  // Q, K and V of each stage, a full and an empty mbarrier per stage, and
  // 1 KiB of alignment slack: 225 KiB at head_dim 128.
  return (kPrefillTileRows + 2 * kStages * kKeyTile) * D * 2 + 16 * kStages + 1024;
}

#ifdef TP_PREFILL_WGMMA
using sm90::CpAsyncMbarArrive;
using sm90::Desc;
using sm90::FenceProxyAsync;
using sm90::MbarArriveLane0;
using sm90::MbarInit;
using sm90::MbarWait;
using sm90::NamedBarrierArrive;
using sm90::NamedBarrierSync;
using sm90::PinAccumulators;
using sm90::WgmmaCommit;
using sm90::WgmmaFence;
using sm90::WgmmaPV;
using sm90::WgmmaSS128;
using sm90::WgmmaWait;

// Moves registers between warpgroups (setmaxnreg): the producer gives its
// spare ones up, the MMA warpgroups take them.
template <int N, bool kIncrease>
__device__ __forceinline__ void SetMaxRegs() {
  if constexpr (kIncrease) {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
  } else {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
  }
}

// One producer warp's copies of rows [row0, row0 + 32) of a K/V tile: lane l
// takes 16-byte chunk l % (D / 8) of every (32 / (D / 8))-th row; `slot` is
// row row0 + lane's (KeySlot: -1 gives a zero row).
template <int D>
__device__ __forceinline__ void IssueRows(const Params& p, const Tile& t, int slot_of_lane, int row0, uint32_t sk,
                                          uint32_t sv) {
  constexpr int kChunks = D / 8, kRowsPerPass = 32 / kChunks;
  const int lane = threadIdx.x & 31, c = lane % kChunks;
#pragma unroll
  for (int i = 0; i < 32 / kRowsPerPass; ++i) {
    const int r = lane / kChunks + i * kRowsPerPass;  // row within the warp's 32
    const int slot = __shfl_sync(0xffffffffu, slot_of_lane, r);
    const bool valid = slot >= 0;
    const size_t off = valid ? (static_cast<size_t>(slot) * p.num_kv_heads + t.kv_head) * D + c * 8 : 0;
    const uint32_t dst = prefill::SwizzledOffset<D, kKeyTile>(row0 + r, c);
    CpAsync16(sk + dst, p.k_cache + off, valid);
    CpAsync16(sv + dst, p.v_cache + off, valid);
  }
}

#endif  // TP_PREFILL_WGMMA

template <int D>
__global__ void __launch_bounds__(kThreads, 1) WgmmaPrefillKernel(const Params p) {
#ifdef TP_PREFILL_WGMMA
  constexpr int kN8 = kKeyTile / 8;
  constexpr uint32_t kQBlock = kPrefillTileRows * 128, kKVBlock = kKeyTile * 128;  // one 64-column block
  constexpr uint32_t kStage = kKeyTile * D * 2;
  extern __shared__ uint8_t smem_raw[];
  // Swizzle atoms (8 rows x 128 bytes) must start on 1 KiB boundaries.
  const uint32_t sq = (SmemAddress(smem_raw) + 1023) & ~1023u;
  const uint32_t sk0 = sq + kPrefillTileRows * D * 2;
  const uint32_t sv0 = sk0 + kStages * kStage;
  const uint32_t full0 = sv0 + kStages * kStage, empty0 = full0 + 8 * kStages;  // one mbarrier per stage each
  const Tile t = prefill::GetTile(p);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Broadcast from lane 0 so the compiler knows the warpgroup index -- and
  // every branch on it -- is uniform: a wgmma under a branch it thinks
  // divergent gets serialized.
  const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0);
  const int num_tiles = __shfl_sync(0xffffffffu, (t.kend + kKeyTile - 1) / kKeyTile, 0);
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      MbarInit(full0 + 8 * s, 128);         // the producer threads, as their copies land
      MbarInit(empty0 + 8 * s, kMmaWarps);  // one arrival per MMA warp once its P·V has read the stage
    }
  }
  __syncthreads();

  if (wg == kWarpGroups) {  // the producer warpgroup: K/V tiles into the stages, tile after tile
    SetMaxRegs<kProducerRegs, false>();
    // Warp w copies rows [32w, 32w + 32) of each tile; lane l looks up row
    // 32w + l's slot a tile ahead, so the block-table load's latency hides
    // behind the wait for a free stage.
    const int row0 = (warp & 3) * 32;
    int slot = prefill::KeySlot(p, t, row0 + lane);
    for (int j = 0; j < num_tiles; ++j) {
      const int s = j % kStages;
      MbarWait(empty0 + 8 * s, ((j / kStages) & 1) ^ 1);  // tile j - 3's P·V is done in both warpgroups
      IssueRows<D>(p, t, slot, row0, sk0 + s * kStage, sv0 + s * kStage);
      CpAsyncMbarArrive(full0 + 8 * s);
      slot = prefill::KeySlot(p, t, (j + 1) * kKeyTile + row0 + lane);  // past the last tile: unused
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");  // no copy outlives its thread (none were committed)
    return;
  }
  SetMaxRegs<kMmaRegs, true>();

  // The MMA warpgroups. Q: copied by their 256 threads, waited for by all.
  prefill::LoadQ<D, kMmaThreads>(p, t, sq);
  CpAsyncCommit();
  CpAsyncWait<0>();
  FenceProxyAsync();
  NamedBarrierSync(kQBarrier, kMmaThreads);

  const int row_a = warp * 16 + (lane >> 2);
  const int pos[2] = {prefill::RowPosition(p, t, row_a), prefill::RowPosition(p, t, row_a + 8)};
  const int wg_first = prefill::RowPosition(p, t, wg * 64);
  // A warpgroup of padding rows only (a short tile: decode rows in a mixed
  // step) computes nothing but still releases every stage. The others run
  // every key tile of the block: past a warpgroup's last position a tile is
  // fully masked, which costs at most one tile and keeps the loop free of
  // branches the compiler cannot prove uniform (they make it serialize the
  // MMAs).
  const bool active = __shfl_sync(0xffffffffu, wg_first >= 0 ? 1 : 0, 0) != 0;
  // Ping-pong: with both warpgroups active they take turns issuing their
  // MMAs (named barrier kTurnBarrier + wg is "wg may issue"), so that one's
  // softmax runs while the other's Q·Kᵀ and P·V keep the tensor cores busy.
  const bool pingpong = t.rows > 64;
  auto wait_full = [&](int tile) {
    MbarWait(full0 + 8 * (tile % kStages), (tile / kStages) & 1);
    FenceProxyAsync();  // cp.async wrote through the generic proxy; wgmma reads through the async one
  };
  auto release = [&](int tile) { MbarArriveLane0(empty0 + 8 * (tile % kStages), lane); };
  auto needs_mask = [&](int tile) { return tile * kKeyTile + kKeyTile - 1 > wg_first; };
  // S = Q · K(tile)ᵀ, issued and committed (not waited for).
  auto issue_scores = [&](float (&s)[kN8][4], int tile) {
    const uint32_t sk = sk0 + (tile % kStages) * kStage;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      // 16 columns of head_dim: column block kk / 4, 32 bytes into its rows.
      const uint32_t qa = sq + (kk >> 2) * kQBlock + wg * 64 * 128 + (kk & 3) * 32;
      const uint32_t ka = sk + (kk >> 2) * kKVBlock + (kk & 3) * 32;
      WgmmaSS128(s, Desc(qa, 16, 1024), Desc(ka, 16, 1024), kk > 0);
    }
    WgmmaCommit();
  };
  // O += P · V(tile), committed.
  auto issue_pv = [&](float (&o)[D / 8][4], const uint32_t (&pa)[kKeyTile / 16][4], int tile) {
    const uint32_t sv = sv0 + (tile % kStages) * kStage;
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; ++kk) {
      // 16 keys: two 8-row groups (SBO 1 KiB); the next 64 columns of V are
      // the next column block (LBO).
      WgmmaPV<D>(o, pa[kk], Desc(sv + kk * 16 * 128, kKVBlock, 1024));
    }
    WgmmaCommit();
  };
  auto pack = [](const float (&s)[kN8][4], uint32_t (&pa)[kKeyTile / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; ++kk) {
      pa[kk][0] = prefill::PackBf16(s[2 * kk][0], s[2 * kk][1]);
      pa[kk][1] = prefill::PackBf16(s[2 * kk][2], s[2 * kk][3]);
      pa[kk][2] = prefill::PackBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[kk][3] = prefill::PackBf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
  };

  float s[kN8][4], o[D / 8][4], corr[2];
  uint32_t pa[kKeyTile / 16][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  prefill::RowState st;

  if (!active) {
    for (int j = 0; j < num_tiles; ++j) {
      wait_full(j);
      release(j);
    }
  } else {
    // Warpgroup 0 takes the first turn (a pass it grants itself).
    if (pingpong && wg == 0) NamedBarrierArrive(kTurnBarrier, kMmaThreads);
    wait_full(0);
    WgmmaFence();
    issue_scores(s, 0);
    WgmmaWait<0>();
    PinAccumulators(s);
    prefill::SoftmaxStep<kN8>(s, st, 0, pos, needs_mask(0), p.scale_log2, corr);
    pack(s, pa);
    // Iteration j: O += P(j)·V(j) and S = Q·K(j + 1)ᵀ run on the tensor
    // cores, then this warpgroup turns the new scores into probabilities
    // while P·V finishes and the other warpgroup's MMAs run.
    for (int j = 0; j < num_tiles; ++j) {
      const bool more = j + 1 < num_tiles;
      if (more) wait_full(j + 1);
      if (pingpong) NamedBarrierSync(kTurnBarrier + wg, kMmaThreads);
      // O and P were last written by ordinary instructions: they must be in
      // their registers before the fence that hands them to the tensor cores.
      PinAccumulators(o);
      PinAccumulators(pa);
      WgmmaFence();
      // After issuing, the other warpgroup's turn; its last pass would find
      // no one waiting, so warpgroup 1 leaves its final one out (a named
      // barrier must not carry arrivals past the block's end).
      if (more) {
        issue_scores(s, j + 1);
        issue_pv(o, pa, j);
        if (pingpong) NamedBarrierArrive(kTurnBarrier + 1 - wg, kMmaThreads);
        WgmmaWait<1>();  // the scores; P·V may still run
        PinAccumulators(s);
        prefill::SoftmaxStep<kN8>(s, st, (j + 1) * kKeyTile, pos, needs_mask(j + 1), p.scale_log2, corr);
        WgmmaWait<0>();
        PinAccumulators(o);
        PinAccumulators(pa);  // P(j) stayed untouched until its MMA finished
        release(j);
        prefill::RescaleRows(o, corr);
        pack(s, pa);
      } else {  // the last tile
        issue_pv(o, pa, j);
        if (pingpong && wg == 0) NamedBarrierArrive(kTurnBarrier + 1, kMmaThreads);
        WgmmaWait<0>();
        PinAccumulators(o);
        release(j);
      }
    }
  }
  prefill::StoreOutput<D>(p, t, row_a, o, st);
#else
  __trap();  // PrefillWgmmaAvailable() keeps launches away from builds without sm_90a code
#endif
}

// Writes 1 when this device runs the sm_90a build of this file.
__global__ void ProbeKernel(int* has_wgmma) {
#ifdef TP_PREFILL_WGMMA
  *has_wgmma = 1;
#else
  *has_wgmma = 0;
#endif
}

template <int D>
absl::Status Launch(const Params& p, cudaStream_t stream) {
  constexpr int smem = SmemBytes<D>();
  TP_CUDA_CHECK(cudaFuncSetAttribute(WgmmaPrefillKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  WgmmaPrefillKernel<D><<<dim3(p.num_tiles, p.num_kv_heads), kThreads, smem, stream>>>(p);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace

bool PrefillWgmmaAvailable() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  static std::mutex mu;
  static std::map<int, bool> known;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = known.find(device); it != known.end()) return it->second;
  bool ok = false;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess && prop.major == 9 && prop.minor == 0) {
    int* flag = nullptr;
    int host = 0;
    if (cudaMalloc(&flag, sizeof(int)) == cudaSuccess) {
      ProbeKernel<<<1, 1>>>(flag);
      ok = cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess && host == 1;
      cudaFree(flag);
    }
  }
  known[device] = ok;
  return ok;
}

absl::Status LaunchWgmmaPrefill(const Params& p, int head_dim, cudaStream_t stream) {
  return head_dim == 128 ? Launch<128>(p, stream) : Launch<64>(p, stream);
}

}  // namespace tpserve::worker::cuda
