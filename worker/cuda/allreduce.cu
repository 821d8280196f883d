#include "worker/cuda/allreduce.h"

#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "worker/cuda/allreduce_sync.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/norm.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

using namespace allreduce_internal;  // NOLINT: the kernels' own helpers

// AddRmsNorm's block size: the fused kernel's per-thread partial sums of
// squares and their block reduction then match it bit for bit.
constexpr int kThreads = kNormThreads;

struct NormArgs {
  bf16* residual = nullptr;
  const bf16* weight = nullptr;
  bf16* out = nullptr;
  int rows = 0, hidden = 0;
  float eps = 0.0f;
};

// Values a thread holds in AddNormRowInRegisters: rows up to 8 * kThreads *
// kRowVecs wide (kMaxFusedHidden) stay in registers, so the row is read once
// and every load of a thread is issued before the first one returns.
constexpr int kRowVecs = kMaxFusedHidden / (8 * kThreads);
static_assert(kRowVecs * 8 * kThreads == kMaxFusedHidden);

// A row is split over at most this many blocks when there are fewer rows
// than blocks (decode at small batch): one block alone takes ~3 us for a row
// of 8192 on an H200, the split parts each a fraction of it.
constexpr int kMaxRowParts = 8;

// The sum of squares of a row split over `parts` blocks starting at
// `first_block`, from each block's `part_ss`: published through this rank's
// state words with the epoch, added in part order (every block of the row
// gets the same bits).
__device__ float RowSumOfSquares(const Ctx& c, float part_ss, int first_block, int parts) {
  uint32_t* st = c.g.state;
  if (threadIdx.x == 0) {
    st[AllReduceState::kPartial + blockIdx.x] = __float_as_uint(part_ss);
    __threadfence();
    StoreRelease(st + AllReduceState::kPartialFlag + blockIdx.x, c.epoch);
  }
  if (threadIdx.x < parts) {
    const uint32_t* flag = st + AllReduceState::kPartialFlag + first_block + threadIdx.x;
    while (static_cast<int32_t>(LoadAcquire(flag) - c.epoch) < 0) {
      if (*c.failed || GlobalTimerNs() > c.deadline) {  // blocks are co-resident: not expected
        ReportMissing(c, c.g.rank);
        break;
      }
    }
  }
  __syncthreads();
  float total = 0.0f;
  for (int q = 0; q < parts; ++q) total += __uint_as_float(__ldcg(st + AllReduceState::kPartial + first_block + q));
  return total;
}

// The fused tail for one row, on part `part` of `parts` of it: residual +=
// bf16(sum); out = bf16(weight * bf16(residual * inv)). Whole rows (parts ==
// 1) get the same arithmetic in the same order as AddRmsNorm (norm.cu);
// split rows add the parts' sums of squares in another order (the
// normalised values may differ in the last bit, the residual never).
// One-shot: the row is summed here from this rank's input and the peers'
// pushed values; two-shot: read summed from `gathered`.
template <bool kOneShot>
__device__ void AddNormRowInRegisters(const Ctx& c, int row, int part, int parts, const NormArgs& norm,
                                      const float4* in4, const float4* gathered, float* scratch) {
  const int per = (norm.hidden / 8 + parts - 1) / parts;
  const int v0 = part * per, nvec = min(norm.hidden / 8, v0 + per);  // this block's vectors: [v0, nvec)
  const size_t base4 = static_cast<size_t>(row) * norm.hidden / 4;
  uint4* res4 = reinterpret_cast<uint4*>(norm.residual + static_cast<size_t>(row) * norm.hidden);
  float4 acc[2 * kRowVecs];
  Pack8 r[kRowVecs];
#pragma unroll
  for (int k = 0; k < kRowVecs; ++k) {
    const int i = v0 + threadIdx.x + k * blockDim.x;
    if (i < nvec) {
      r[k].u = res4[i];
      if (kOneShot) {
        acc[2 * k] = in4[base4 + 2 * i];
        acc[2 * k + 1] = in4[base4 + 2 * i + 1];
      } else {
        acc[2 * k] = __ldcg(gathered + base4 + 2 * i);
        acc[2 * k + 1] = __ldcg(gathered + base4 + 2 * i + 1);
      }
    }
  }
  if (kOneShot) {
    // acc holds this rank's values; the sum goes in rank order on every rank.
    float4 own[2 * kRowVecs];
#pragma unroll
    for (int j = 0; j < 2 * kRowVecs; ++j) own[j] = acc[j];
    for (int src = 0; src < c.g.world; ++src) {
      float4 v[2 * kRowVecs];
      if (src == c.g.rank) {
#pragma unroll
        for (int j = 0; j < 2 * kRowVecs; ++j) v[j] = own[j];
      } else {
        const float4* p = reinterpret_cast<const float4*>(
            c.g.buffers[c.g.rank] + AllReduceLayout::OneShotOffset(c.g, c.slot, src)) + base4;
        uint4 raw[2 * kRowVecs];
#pragma unroll
        for (int j = 0; j < 2 * kRowVecs; ++j) {
          const int i = v0 + threadIdx.x + (j / 2) * blockDim.x;
          if (i < nvec) raw[j] = LoadVolatile(p + 2 * i + j % 2);
        }
#pragma unroll
        for (int j = 0; j < 2 * kRowVecs; ++j) {
          const int i = v0 + threadIdx.x + (j / 2) * blockDim.x;
          if (i < nvec) v[j] = HasSentinel(raw[j]) ? AwaitOneShot(c, p + 2 * i + j % 2, src) : AsFloat4(raw[j]);
        }
      }
#pragma unroll
      for (int j = 0; j < 2 * kRowVecs; ++j) acc[j] = src == 0 ? v[j] : Add4(acc[j], v[j]);
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kRowVecs; ++k) {
    const int i = v0 + threadIdx.x + k * blockDim.x;
    if (i < nvec) {
      Pack8 a;
      a.u = RoundPack8(acc[2 * k], acc[2 * k + 1]);
      AddPack8(r[k], a);
      res4[i] = r[k].u;
      AddSquares(r[k], ss);
    }
  }
  ss = BlockSum(ss, scratch);
  if (parts > 1) ss = RowSumOfSquares(c, ss, blockIdx.x - part, parts);
  const float inv = RmsInverse(ss, norm.hidden, norm.eps);
#pragma unroll
  for (int k = 0; k < kRowVecs; ++k) {
    const int i = v0 + threadIdx.x + k * blockDim.x;
    if (i < nvec) {
      Pack8 w;
      w.u = reinterpret_cast<const uint4*>(norm.weight)[i];
      reinterpret_cast<uint4*>(norm.out + static_cast<size_t>(row) * norm.hidden)[i] = NormalizePack8(r[k], w, inv);
    }
  }
}

// One kernel for the four forms. Data moves as float4; peers' data is read
// with __ldcg (L2, never a stale L1 line from an earlier call).
template <bool kTwoShot, bool kFused>
__global__ void __launch_bounds__(kThreads) AllReduceKernel(AllReduceGroup g, const float* in, float* out,
                                                            size_t n4, NormArgs norm) {
  __shared__ uint32_t s_epoch, s_refill;
  __shared__ int s_failed;
  __shared__ float scratch[32];
  PdlWait();  // the input's producer, and the previous call's epoch bump
  PdlTrigger();
  if (threadIdx.x == 0) {
    s_epoch = __ldcg(g.state + AllReduceState::kEpoch + blockIdx.x) + 1;
    s_failed = __ldcg(g.state + AllReduceState::kDead) != 0;  // a dead group stays dead
    s_refill = __ldcg(g.state + AllReduceState::kRefill + blockIdx.x);
  }
  __syncthreads();
  if (s_failed) return;
  const Ctx c{g, s_epoch, static_cast<int>(kTwoShot ? s_epoch % 2 : s_epoch % 3), GlobalTimerNs() + g.timeout_ns,
              &s_failed};
  const int me = g.rank, world = g.world;
  char* mine = g.buffers[me];
  const float4* in4 = reinterpret_cast<const float4*>(in);
  auto one_shot_region = [&](char* buf, int slot, int src) {
    return reinterpret_cast<float4*>(buf + AllReduceLayout::OneShotOffset(g, slot, src));
  };
  auto src_region = [&](char* buf, int src) {  // two-shot
    return reinterpret_cast<float4*>(buf + AllReduceLayout::SrcOffset(g, c.slot, src));
  };
  {
    // The previous call's one-shot slot back to the sentinel: every peer has
    // finished writing it (we read it all), and none writes it again before
    // this call's data reaches it (two calls from now).
    size_t r0, r1;
    BlockRange(s_refill, r0, r1);
    const int previous = (s_epoch + 2) % 3;
    const uint4 sentinel = make_uint4(kSentinel, kSentinel, kSentinel, kSentinel);
    for (int src = 0; src < world; ++src) {
      if (src == me) continue;
      uint4* region = reinterpret_cast<uint4*>(one_shot_region(mine, previous, src));
      for (size_t i = r0 + threadIdx.x; i < r1; i += blockDim.x) region[i] = sentinel;
    }
  }
  const int grid = gridDim.x;
  // Fused: a row per block, or each row split over `parts` blocks.
  const int parts = kFused && norm.rows < grid ? min(kMaxRowParts, grid / norm.rows) : 1;
  const int norm_blocks = !kFused ? 0 : parts > 1 ? norm.rows * parts : min(norm.rows, grid);
  auto fused_rows = [&](auto one_shot, const float4* gathered) {
    constexpr bool kOne = decltype(one_shot)::value;
    if (parts > 1) {
      if (static_cast<int>(blockIdx.x) < norm_blocks) {
        AddNormRowInRegisters<kOne>(c, blockIdx.x / parts, blockIdx.x % parts, parts, norm, in4, gathered, scratch);
      }
      return;
    }
    for (int r = blockIdx.x; r < norm.rows; r += grid) {
      AddNormRowInRegisters<kOne>(c, r, 0, 1, norm, in4, gathered, scratch);
    }
  };
  if (!kTwoShot) {
    size_t b0, b1;
    BlockRange(n4, b0, b1);
    for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
      const float4 v = Sanitize(in4[i]);
      for (int p = 0; p < world; ++p) {
        if (p != me) one_shot_region(g.buffers[p], c.slot, me)[i] = v;
      }
    }
    // Sums in rank order on every rank, so all ranks hold identical bits.
    auto sum4 = [&](size_t i) {
      float4 s = me == 0 ? in4[i] : AwaitOneShot(c, one_shot_region(mine, c.slot, 0) + i, 0);
      for (int src = 1; src < world; ++src) {
        s = Add4(s, src == me ? in4[i] : AwaitOneShot(c, one_shot_region(mine, c.slot, src) + i, src));
      }
      return s;
    };
    if (kFused) {
      fused_rows(std::true_type(), nullptr);
    } else {
      float4* out4 = reinterpret_cast<float4*>(out);
      for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) out4[i] = sum4(i);
    }
  } else {
    // Rank r owns chunk r: peers send it their part, it sums and sends the
    // sum back to everyone.
    const size_t c4 = n4 / world;
    size_t b0, b1;
    BlockRange(c4, b0, b1);
    for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
      for (int p = 0; p < world; ++p) {
        if (p != me) src_region(g.buffers[p], me)[i] = in4[p * c4 + i];
      }
    }
    SignalRanks(c, 0, false);
    if (!WaitRanks(c, 0, blockIdx.x, blockIdx.x + 1, false)) return;
    const size_t gather_off = AllReduceLayout::GatherOffset(g, c.slot);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
      const float4 own = in4[me * c4 + i];
      float4 s = me == 0 ? own : __ldcg(src_region(mine, 0) + i);
      for (int src = 1; src < world; ++src) s = Add4(s, src == me ? own : __ldcg(src_region(mine, src) + i));
      for (int p = 0; p < world; ++p) {
        if (kFused || p != me) reinterpret_cast<float4*>(g.buffers[p] + gather_off)[me * c4 + i] = s;
      }
      if (!kFused) out4[me * c4 + i] = s;
    }
    SignalRanks(c, 1, kFused);
    const float4* gathered = reinterpret_cast<const float4*>(mine + gather_off);
    if (kFused) {
      if (static_cast<int>(blockIdx.x) < norm_blocks) {
        if (!WaitRanks(c, 1, 0, gridDim.x, true)) return;
        fused_rows(std::false_type(), gathered);
      }
    } else {
      if (!WaitRanks(c, 1, blockIdx.x, blockIdx.x + 1, false)) return;
      for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
        for (int p = 0; p < world; ++p) {
          if (p != me) out4[p * c4 + i] = __ldcg(gathered + p * c4 + i);
        }
      }
    }
  }
  // This block's copy of the epoch and of what to re-fill next call (the
  // next call cannot start before this one ends: stream order, PdlWait).
  if (threadIdx.x == 0 && !s_failed) {
    g.state[AllReduceState::kEpoch + blockIdx.x] = c.epoch;
    g.state[AllReduceState::kRefill + blockIdx.x] = kTwoShot ? 0u : static_cast<uint32_t>(n4);
  }
}

absl::Status CheckGroup(const AllReduceGroup& g, AllReduceAlgo algo, size_t count) {
  if (g.world < 2 || g.world > kMaxAllReduceRanks || g.rank < 0 || g.rank >= g.world || g.state == nullptr) {
    return absl::FailedPreconditionError("custom all-reduce: the group is not set up");
  }
  if (count % 4 != 0) return absl::InvalidArgumentError(absl::StrCat("custom all-reduce: count ", count, " % 4 != 0"));
  const size_t bytes = count * sizeof(float);
  if (algo == AllReduceAlgo::kOneShot && bytes > g.one_shot_stride) {
    return absl::InvalidArgumentError(
        absl::StrCat("custom all-reduce: one-shot of ", bytes, " bytes is over its ", g.one_shot_stride));
  }
  if (algo == AllReduceAlgo::kTwoShot && (bytes > g.max_bytes || count % (4 * g.world) != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("custom all-reduce: two-shot of ", count,
                                                   " values needs a multiple of ", 4 * g.world, " and at most ",
                                                   g.max_bytes / 4));
  }
  return absl::OkStatus();
}

template <bool kFused>
absl::Status Launch(const AllReduceGroup& g, AllReduceAlgo algo, const float* in, float* out, size_t count,
                    const NormArgs& norm, cudaStream_t stream) {
  if (absl::Status s = CheckGroup(g, algo, count); !s.ok()) return s;
  if (count == 0) return absl::OkStatus();
  const size_t n4 = count / 4;
  // Every call the same grid: each block keeps its own epoch (AllReduceState).
  const dim3 grid(std::min(g.blocks, kMaxAllReduceBlocks));
  if (algo == AllReduceAlgo::kOneShot) {
    TP_CUDA_CHECK(LaunchPdl(AllReduceKernel<false, kFused>, grid, dim3(kThreads), 0, stream, g, in, out, n4, norm));
  } else {
    TP_CUDA_CHECK(LaunchPdl(AllReduceKernel<true, kFused>, grid, dim3(kThreads), 0, stream, g, in, out, n4, norm));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LaunchAllReduce(const AllReduceGroup& group, AllReduceAlgo algo, const float* in, float* out,
                             size_t count, cudaStream_t stream) {
  return Launch<false>(group, algo, in, out, count, NormArgs{}, stream);
}

absl::Status LaunchAllReduceAddRmsNorm(const AllReduceGroup& group, AllReduceAlgo algo, const float* in,
                                       bf16* residual, const bf16* weight, bf16* out, int rows, int hidden,
                                       float eps, cudaStream_t stream) {
  if (rows < 0 || hidden <= 0 || hidden % 8 != 0 || hidden > kMaxFusedHidden) {
    return absl::InvalidArgumentError(absl::StrCat("custom all-reduce + RMSNorm: ", rows, " rows of ", hidden,
                                                   " (hidden must be a multiple of 8, at most ", kMaxFusedHidden,
                                                   ")"));
  }
  NormArgs norm{residual, weight, out, rows, hidden, eps};
  return Launch<true>(group, algo, in, nullptr, static_cast<size_t>(rows) * hidden, norm, stream);
}

}  // namespace tpserve::worker::cuda
