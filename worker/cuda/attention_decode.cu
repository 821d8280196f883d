// Split-KV ("flash-decoding") attention for decode steps (the kernel is in
// attention_decode.cuh). Splits are merged by a second small kernel through
// their log-sum-exp. The number of splits is fixed per launch (and so per CUDA
// graph); each sequence's context is divided evenly over them at run time,
// so a short context in a graph captured for max_model_len still spreads
// over every split instead of leaving most of the GPU idle.
#include <algorithm>

#include "common/env.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/attention_decode.cuh"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/kv_cache.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kMaxSplits = 128;  // what a launch accepts

// Merges the splits of one (sequence, head): weights 2^(lse - max). One warp
// reads every split's lse in one round of loads (up to 4 a lane; a loop of
// dependent loads cost 5-6 us at 32 splits); splits that saw no key (lse
// -inf: their part_o is never written) are skipped. Each thread then reads
// its element of the active splits' outputs 8 at a time, so their loads
// overlap.
__global__ void MergeSplitsKernel(const float* __restrict__ part_o, const float* __restrict__ part_lse,
                                  bf16* __restrict__ out, int nh, int d, int num_splits) {
  constexpr int kPerLane = kMaxSplits / 32, kBatch = 8;
  __shared__ float weight[kMaxSplits];
  __shared__ int active[kMaxSplits];
  __shared__ int num_active;
  __shared__ float total;
  PdlWait();
  PdlTrigger();
  const int s = blockIdx.x, h = blockIdx.y;
  const size_t base = (static_cast<size_t>(s) * nh + h) * num_splits;
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    float lse[kPerLane];
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const int i = lane + 32 * r;
      lse[r] = i < num_splits ? part_lse[base + i] : -INFINITY;
    }
    float mx = lse[0];
#pragma unroll
    for (int r = 1; r < kPerLane; ++r) mx = fmaxf(mx, lse[r]);
    mx = WarpMax(mx);
    float sum = 0.0f;
    int count = 0;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const float f = mx != -INFINITY ? exp2f(lse[r] - mx) : 0.0f;
      const unsigned used = __ballot_sync(0xffffffffu, f > 0.0f);
      if (f > 0.0f) {
        const int slot = count + __popc(used & ((1u << lane) - 1u));
        weight[slot] = f;
        active[slot] = lane + 32 * r;
      }
      count += __popc(used);
      sum += f;
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      num_active = count;
      total = sum;
    }
  }
  __syncthreads();
  const int n = num_active;
  for (int e = threadIdx.x; e < d; e += blockDim.x) {
    float o = 0.0f;
    for (int j0 = 0; j0 < n; j0 += kBatch) {
      float v[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) v[u] = j0 + u < n ? part_o[(base + active[j0 + u]) * d + e] : 0.0f;
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        if (j0 + u < n) o += weight[j0 + u] * v[u];
      }
    }
    out[static_cast<size_t>(s) * nh * d + h * d + e] = __float2bfloat16(total > 0.0f ? o / total : 0.0f);
  }
}

// Keys a block asks L2 for before PdlWait(): one pass of its warps (more
// would compete with the qkv GEMV for L2 at long contexts, where the kernel
// streams anyway). TPSERVE_DECODE_PREFETCH_KEYS (0 to 4096) sets it for A/B
// runs.
int PrefetchKeys() {
  static const int keys = EnvIntInRange("TPSERVE_DECODE_PREFETCH_KEYS", 0, 4096, kDecodeWarps * 32);
  return keys;
}

// rope: nullptr when q and the cache are ready (a separate RopeAndCacheWrite).
template <int D, int G, typename KV>
absl::Status Launch(const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv, const PagedAttnBatch& b,
                    const DecodePartition& p, void* ws, const AttnDims& d, const DecodeRopeArgs* rope,
                    cudaStream_t stream) {
  float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)) * M_LOG2E);
  if constexpr (kIsFp8<KV>) scale_log2 *= kv.k_scale;
  float* part_o = static_cast<float*>(ws);
  float* part_lse = part_o + static_cast<size_t>(b.num_seqs) * d.num_heads * p.num_splits * D;
  dim3 grid(b.num_seqs, d.num_kv_heads, p.num_splits);
  const DecodeRopeArgs args = rope != nullptr ? *rope : DecodeRopeArgs{};
  // The fused-RoPE form (opt-in) is built narrow only.
  const KV* k_cache = static_cast<const KV*>(kv.k);
  const KV* v_cache = static_cast<const KV*>(kv.v);
  if (rope == nullptr && p.tensor_cores && DecodeMmaTakes(D)) {
    const DecodeMmaLaunch l{.q = q,
                            .q_stride = q_stride,
                            .out = out,
                            .part_o = part_o,
                            .part_lse = part_lse,
                            .k_cache = k_cache,
                            .v_cache = v_cache,
                            .batch = b,
                            .num_heads = d.num_heads,
                            .num_kv_heads = d.num_kv_heads,
                            .block_size = d.block_size,
                            .scale_log2 = scale_log2,
                            .v_scale = kv.v_scale,
                            .num_splits = p.num_splits,
                            .prefetch_keys = PrefetchKeys(),
                            .stream = stream};
    if (absl::Status s = LaunchDecodeMma(D, G, kv.dtype, l); !s.ok()) return s;
  } else {
    auto kernel = rope != nullptr  ? DecodeKernel<D, G, KV, true, false>
                  : p.wide_loads ? DecodeKernel<D, G, KV, false, true>
                                 : DecodeKernel<D, G, KV, false, false>;
    TP_CUDA_CHECK(LaunchPdl(kernel, grid, dim3(kDecodeWarps * 32), 0, stream, q, q_stride, out, part_o, part_lse,
                            k_cache, v_cache, b, d.num_heads, d.num_kv_heads, d.block_size, scale_log2, kv.v_scale,
                            p.num_splits, PrefetchKeys(), args));
  }
  if (p.num_splits > 1) {
    TP_CUDA_CHECK(LaunchPdl(MergeSplitsKernel, dim3(b.num_seqs, d.num_heads), dim3(D), 0, stream, part_o,
                            part_lse, out, d.num_heads, D, p.num_splits));
  }
  return absl::OkStatus();
}

template <int D, typename KV>
absl::Status DispatchGroup(int group, const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv,
                           const PagedAttnBatch& b, const DecodePartition& p, void* ws, const AttnDims& d,
                           const DecodeRopeArgs* rope, cudaStream_t stream) {
  switch (group) {
    case 1: return Launch<D, 1, KV>(q, q_stride, out, kv, b, p, ws, d, rope, stream);
    case 2: return Launch<D, 2, KV>(q, q_stride, out, kv, b, p, ws, d, rope, stream);
    case 4: return Launch<D, 4, KV>(q, q_stride, out, kv, b, p, ws, d, rope, stream);
    case 7: return Launch<D, 7, KV>(q, q_stride, out, kv, b, p, ws, d, rope, stream);
    case 8: return Launch<D, 8, KV>(q, q_stride, out, kv, b, p, ws, d, rope, stream);
    default: return absl::UnimplementedError("decode attention: query heads per KV head must be 1, 2, 4, 7 or 8");
  }
}

absl::Status Decode(const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv, const PagedAttnBatch& batch,
                    const DecodePartition& partition, void* workspace, const AttnDims& dims,
                    const DecodeRopeArgs* rope, cudaStream_t stream) {
  if (dims.num_kv_heads <= 0 || dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError("attention: num_heads must be a multiple of num_kv_heads");
  }
  if (partition.num_splits < 1 || partition.num_splits > kMaxSplits) {
    return absl::InvalidArgumentError("decode attention: 1 to 128 splits");
  }
  // The kernel reads each query row in 16-byte loads.
  if (q_stride % 8 != 0 || reinterpret_cast<uintptr_t>(q) % 16 != 0) {
    return absl::InvalidArgumentError("decode attention: q must be 16-byte aligned, q_stride a multiple of 8");
  }
  if (batch.num_seqs == 0) return absl::OkStatus();
  const int group = dims.num_heads / dims.num_kv_heads;
  return WithKvElement(kv.dtype, [&](auto tag) -> absl::Status {
    using KV = decltype(tag);
    switch (dims.head_dim) {
      case 32: return DispatchGroup<32, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, rope,
                                            stream);
      case 64: return DispatchGroup<64, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, rope,
                                            stream);
      case 128: return DispatchGroup<128, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, rope,
                                              stream);
      default: return absl::UnimplementedError("attention: head_dim must be 32, 64 or 128");
    }
  });
}

// kAuto: the separate kernels unless TPSERVE_DECODE_FUSED_ROPE=1 (see
// attention.h for why).
bool UseFusedRope(DecodeRope mode) {
  static const bool env_on = EnvSwitch("TPSERVE_DECODE_FUSED_ROPE", false);
  return mode == DecodeRope::kFused || (mode == DecodeRope::kAuto && env_on);
}

int MaxChosenSplits() {
  static const int cap = EnvIntInRange("TPSERVE_DECODE_MAX_SPLITS", 1, kMaxSplits, kMaxSplits);
  return cap;
}

// TPSERVE_DECODE_WIDE_LOADS: 0 or 1 forces the narrow or the wide form for
// A/B runs; unset, the rule below chooses.
int WideLoadsOverride() {
  static const int v = EnvIntInRange("TPSERVE_DECODE_WIDE_LOADS", 0, 1, -1);
  return v;
}

// TPSERVE_DECODE_MMA: 0 keeps the FMA kernels (for A/B runs).
bool UseTensorCores() {
  static const bool on = EnvSwitch("TPSERVE_DECODE_MMA", true);
  return on;
}

}  // namespace

int DecodeBlocksPerSm() {
  static const int n = EnvIntInRange("TPSERVE_DECODE_BLOCKS_PER_SM", 1, 8,
                                     UseTensorCores() ? kDecodeBlocksPerSmMma : kDecodeBlocksPerSmFma);
  return n;
}

DecodePartition ChooseDecodePartition(int num_seqs, int num_kv_heads, int max_context, int num_sms) {
  const int blocks = std::max(1, num_seqs) * std::max(1, num_kv_heads);
  const int target = DecodeBlocksPerSm() * std::max(1, num_sms);
  const int want = (target + blocks - 1) / blocks;
  const int useful = (std::max(1, max_context) + kMinSplitKeys - 1) / kMinSplitKeys;
  DecodePartition p;
  // More splits read long contexts faster with the FMA kernels (H200, 7B,
  // batch 1: 32k keys in 66 us with 128 splits against 103 us with 32); the
  // tensor-core kernel's rounds are shorter, and one block an SM (33 splits
  // at batch 1) beats two: H200, 7B, 8k-token contexts, batch 1 / 2 / 8 / 32
  // 4.30 / 4.56 / 5.69 / 8.55 -> 4.04 / 4.44 / 5.37 / 8.11 ms a step (bf16),
  // 32k 4.54 -> 4.45, 512-token contexts equal or faster up to batch 256
  // (2026-12-01 ~21:00 UTC, docs/performance.md). A batch-1 graph keeps its
  // split count for short contexts too; there the empty splits exit after
  // writing their lse and the merge skips them, so the count only costs
  // launch width. TPSERVE_DECODE_MAX_SPLITS (1-128) caps it for comparisons.
  p.num_splits = std::clamp(std::min(want, useful), 1, MaxChosenSplits());
  const int wide = WideLoadsOverride();
  p.wide_loads = wide >= 0 ? wide == 1 : blocks <= std::max(1, num_sms);
  p.tensor_cores = UseTensorCores();
  return p;
}

size_t DecodeWorkspaceBytes(int num_seqs, int num_heads, int head_dim, const DecodePartition& p) {
  if (p.num_splits <= 1) return 0;
  return static_cast<size_t>(num_seqs) * num_heads * p.num_splits * (head_dim + 1) * sizeof(float);
}

absl::Status PagedDecodeAttention(const bf16* q, int q_stride, bf16* out, const bf16* k_cache,
                                  const bf16* v_cache, const PagedAttnBatch& batch,
                                  const DecodePartition& partition, void* workspace,
                                  const AttnDims& dims, cudaStream_t stream) {
  return PagedDecodeAttention(q, q_stride, out, Bf16Kv(k_cache, v_cache), batch, partition, workspace, dims, stream);
}

absl::Status PagedDecodeAttention(const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv,
                                  const PagedAttnBatch& batch, const DecodePartition& partition, void* workspace,
                                  const AttnDims& dims, cudaStream_t stream) {
  return Decode(q, q_stride, out, kv, batch, partition, workspace, dims, nullptr, stream);
}

absl::Status PagedDecodeAttentionWithRope(bf16* qkv, int q_stride, bf16* out, const int* positions,
                                          const int* slot_mapping, const KvCacheRef& kv, const PagedAttnBatch& batch,
                                          const DecodePartition& partition, void* workspace, const AttnDims& dims,
                                          const RopeParams& rope, cudaStream_t stream, DecodeRope mode) {
  if (!UseFusedRope(mode)) {
    const absl::Status st = RopeAndCacheWrite(qkv, positions, slot_mapping, kv, batch.num_seqs, dims, rope, stream);
    if (!st.ok()) return st;
    return Decode(qkv, q_stride, out, kv, batch, partition, workspace, dims, nullptr, stream);
  }
  if (!(kv.k_scale > 0.0f && kv.v_scale > 0.0f)) return absl::InvalidArgumentError("KV cache scales must be positive");
  if (q_stride < (dims.num_heads + 2 * dims.num_kv_heads) * dims.head_dim) {
    return absl::InvalidArgumentError("decode attention with RoPE: q_stride shorter than a qkv row");
  }
  DecodeRopeArgs args;
  args.positions = positions;
  args.slot_mapping = slot_mapping;
  args.k_write = kv.k;
  args.v_write = kv.v;
  args.rope = rope;
  args.k_inv_scale = 1.0f / kv.k_scale;
  args.v_inv_scale = 1.0f / kv.v_scale;
  return Decode(qkv, q_stride, out, kv, batch, partition, workspace, dims, &args, stream);
}

}  // namespace tpserve::worker::cuda
