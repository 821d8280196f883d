// Split-KV ("flash-decoding") attention for decode steps. A block owns one
// (sequence, KV head, split): it reads each key and value of its range once
// and scores it against the whole query group of that KV head (GQA), with one
// lane per key. Splits are merged by a second small kernel through their
// log-sum-exp. The number of splits is fixed per launch (and so per CUDA
// graph); each sequence's context is divided evenly over them at run time,
// so a short context in a graph captured for max_model_len still spreads
// over every split instead of leaving most of the GPU idle.
#include <algorithm>
#include <cstdlib>

#include "worker/cuda/attention.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/kv_cache.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxSplits = 128;       // what a launch accepts
constexpr int kMinSplitKeys = 64;     // below this a split is mostly overhead
constexpr int kValueBatch = 8;       // value rows loaded together per lane

// Keys of `ctx` given to each split: an even share, rounded up to whole
// 32-key warp chunks, never below kMinSplitKeys.
__device__ __forceinline__ int SplitKeys(int ctx, int num_splits) {
  const int share = (ctx + num_splits - 1) / num_splits;
  return max(kMinSplitKeys, (share + 31) / 32 * 32);
}

// Lane `lane` owns elements [lane * DPL, lane * DPL + DPL) of a D-wide row.
template <int DPL>
__device__ __forceinline__ void LoadLaneSlice(const fp8* __restrict__ p, float (&v)[DPL]) {
  if constexpr (DPL == 4) {
    const uint32_t raw = *reinterpret_cast<const uint32_t*>(p);
    const float2 a = Fp8x2ToFloat2(static_cast<uint16_t>(raw)), b = Fp8x2ToFloat2(static_cast<uint16_t>(raw >> 16));
    v[0] = a.x;
    v[1] = a.y;
    v[2] = b.x;
    v[3] = b.y;
  } else if constexpr (DPL == 2) {
    const float2 a = Fp8x2ToFloat2(*reinterpret_cast<const uint16_t*>(p));
    v[0] = a.x;
    v[1] = a.y;
  } else {
#pragma unroll
    for (int k = 0; k < DPL; ++k) v[k] = static_cast<float>(p[k]);
  }
}
template <int DPL>
__device__ __forceinline__ void LoadLaneSlice(const bf16* __restrict__ p, float (&v)[DPL]) {
  if constexpr (DPL == 4) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    v[0] = a.x;
    v[1] = a.y;
    v[2] = b.x;
    v[3] = b.y;
  } else if constexpr (DPL == 2) {
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    v[0] = a.x;
    v[1] = a.y;
  } else {
#pragma unroll
    for (int k = 0; k < DPL; ++k) v[k] = __bfloat162float(p[k]);
  }
}

// Eight keys' elements c * 8 .. c * 8 + 7 of a cache row, as floats.
__device__ __forceinline__ void LoadKey8(const bf16* __restrict__ row, int c, float (&k)[8]) {
  Pack8 kk;
  kk.u = reinterpret_cast<const uint4*>(row)[c];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(kk.h2[j]);
    k[2 * j] = f.x;
    k[2 * j + 1] = f.y;
  }
}
__device__ __forceinline__ void LoadKey8(const fp8* __restrict__ row, int c, float (&k)[8]) {
  const uint2 raw = reinterpret_cast<const uint2*>(row)[c];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = Fp8x2ToFloat2(static_cast<uint16_t>((j < 2 ? raw.x : raw.y) >> (16 * (j & 1))));
    k[2 * j] = f.x;
    k[2 * j + 1] = f.y;
  }
}

// KV: the cache's element type. An FP8 cache's k scale is folded into
// scale_log2 and its v scale multiplies the output (v_scale, 1 for bf16).
template <int D, int G, typename KV>
__global__ void __launch_bounds__(kWarps * 32)
    DecodeKernel(const bf16* __restrict__ q, int q_stride, bf16* __restrict__ out,
                 float* __restrict__ part_o, float* __restrict__ part_lse,
                 const KV* __restrict__ k_cache, const KV* __restrict__ v_cache,
                 PagedAttnBatch b, int nh, int nkv, int bs, float scale_log2, float v_scale, int num_splits) {
  constexpr int DPL = D / 32;
  __shared__ float sq[G][D];
  __shared__ float sm[kWarps][G], sl[kWarps][G];
  __shared__ float so[kWarps][G][D];
  PdlWait();
  PdlTrigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int s = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int h0 = kvh * G;
  const int ctx = b.context_len[s];
  const int partition = SplitKeys(ctx, num_splits);
  const int start = split * partition, end = min(ctx, start + partition);
  if (start >= end && num_splits > 1) {  // an empty split (short context): only its lse, which the merge skips
    if (threadIdx.x < G) part_lse[(static_cast<size_t>(s) * nh + h0 + threadIdx.x) * num_splits + split] = -INFINITY;
    return;
  }
  const int* bt = b.block_tables + static_cast<size_t>(s) * b.max_blocks_per_seq;
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    sq[e / D][e % D] = __bfloat162float(q[static_cast<size_t>(s) * q_stride + h0 * D + e]);
  }
  __syncthreads();

  float m[G], l[G], acc[G][DPL];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int k = 0; k < DPL; ++k) acc[g][k] = 0.0f;
  }
  for (int k0 = start + warp * 32; k0 < end; k0 += kWarps * 32) {
    const int t = k0 + lane;
    const bool valid = t < end;
    size_t row = 0;
    float sc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) sc[g] = 0.0f;
    if (valid) {
      row = (static_cast<size_t>(bt[t / bs]) * bs + t % bs) * nkv + kvh;
      const KV* krow = k_cache + row * D;
#pragma unroll 4
      for (int c = 0; c < D / 8; ++c) {
        float kf[8];
        LoadKey8(krow, c, kf);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
#pragma unroll
          for (int g = 0; g < G; ++g) {
            sc[g] = fmaf(sq[g][c * 8 + 2 * j], kf[2 * j], fmaf(sq[g][c * 8 + 2 * j + 1], kf[2 * j + 1], sc[g]));
          }
        }
      }
    }
    float p[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float x = valid ? sc[g] * scale_log2 : -INFINITY;
      const float mnew = fmaxf(m[g], WarpMax(x));  // lane 0 is always valid here
      p[g] = exp2f(x - mnew);
      const float corr = exp2f(m[g] - mnew);
      l[g] = l[g] * corr + WarpSum(p[g]);
      m[g] = mnew;
#pragma unroll
      for (int k = 0; k < DPL; ++k) acc[g][k] *= corr;
    }
    // P·V: the value rows of kValueBatch keys are requested together, so
    // their latencies overlap instead of adding up key by key.
    const int nvalid = min(32, end - k0);
    for (int j0 = 0; j0 < nvalid; j0 += kValueBatch) {
      float vv[kValueBatch][DPL];
#pragma unroll
      for (int jj = 0; jj < kValueBatch; ++jj) {
        const int j = j0 + jj;
        const size_t rj = __shfl_sync(0xffffffffu, row, j & 31);
        if (j < nvalid) {
          LoadLaneSlice<DPL>(v_cache + rj * D + lane * DPL, vv[jj]);
        } else {
#pragma unroll
          for (int k = 0; k < DPL; ++k) vv[jj][k] = 0.0f;
        }
      }
#pragma unroll
      for (int jj = 0; jj < kValueBatch; ++jj) {
        const int j = j0 + jj;
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float pj = __shfl_sync(0xffffffffu, p[g], j & 31);
          if (j >= nvalid) pj = 0.0f;
#pragma unroll
          for (int k = 0; k < DPL; ++k) acc[g][k] = fmaf(pj, vv[jj][k], acc[g][k]);
        }
      }
    }
  }

#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (lane == 0) {
      sm[warp][g] = m[g];
      sl[warp][g] = l[g];
    }
#pragma unroll
    for (int k = 0; k < DPL; ++k) so[warp][g][lane * DPL + k] = acc[g][k];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    const int g = e / D, d = e % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm[w][g]);
    float lsum = 0.0f, o = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(sm[w][g] - mx);
        lsum += sl[w][g] * f;
        o += so[w][g][d] * f;
      }
    }
    const int h = h0 + g;
    if constexpr (kIsFp8<KV>) o *= v_scale;
    if (num_splits == 1) {
      out[static_cast<size_t>(s) * nh * D + h * D + d] = __float2bfloat16(lsum > 0.0f ? o / lsum : 0.0f);
    } else {
      const size_t idx = (static_cast<size_t>(s) * nh + h) * num_splits + split;
      part_o[idx * D + d] = lsum > 0.0f ? o / lsum : 0.0f;
      if (d == 0) part_lse[idx] = lsum > 0.0f ? mx + log2f(lsum) : -INFINITY;
    }
  }
}

// Merges the splits of one (sequence, head): weights 2^(lse - max). One warp
// reads every split's lse at once (a loop of dependent loads cost 5-6 us at 32
// splits); splits that saw no key (lse -inf: their part_o is never written)
// are skipped.
__global__ void MergeSplitsKernel(const float* __restrict__ part_o, const float* __restrict__ part_lse,
                                  bf16* __restrict__ out, int nh, int d, int num_splits) {
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
    float mx = -INFINITY;
    for (int i = lane; i < num_splits; i += 32) mx = fmaxf(mx, part_lse[base + i]);
    mx = WarpMax(mx);
    float sum = 0.0f;
    int count = 0;
    for (int i0 = 0; i0 < num_splits; i0 += 32) {
      const int i = i0 + lane;
      const float f = (i < num_splits && mx != -INFINITY) ? exp2f(part_lse[base + i] - mx) : 0.0f;
      const unsigned used = __ballot_sync(0xffffffffu, f > 0.0f);
      if (f > 0.0f) {
        const int slot = count + __popc(used & ((1u << lane) - 1u));
        weight[slot] = f;
        active[slot] = i;
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
    for (int j = 0; j < n; ++j) o += weight[j] * part_o[(base + active[j]) * d + e];
    out[static_cast<size_t>(s) * nh * d + h * d + e] = __float2bfloat16(total > 0.0f ? o / total : 0.0f);
  }
}

template <int D, int G, typename KV>
absl::Status Launch(const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv,
                    const PagedAttnBatch& b, const DecodePartition& p, void* ws,
                    const AttnDims& d, cudaStream_t stream) {
  float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)) * M_LOG2E);
  if constexpr (kIsFp8<KV>) scale_log2 *= kv.k_scale;
  float* part_o = static_cast<float*>(ws);
  float* part_lse = part_o + static_cast<size_t>(b.num_seqs) * d.num_heads * p.num_splits * D;
  dim3 grid(b.num_seqs, d.num_kv_heads, p.num_splits);
  TP_CUDA_CHECK(LaunchPdl(DecodeKernel<D, G, KV>, grid, dim3(kWarps * 32), 0, stream, q, q_stride, out, part_o,
                          part_lse, static_cast<const KV*>(kv.k), static_cast<const KV*>(kv.v), b, d.num_heads,
                          d.num_kv_heads, d.block_size, scale_log2, kv.v_scale, p.num_splits));
  if (p.num_splits > 1) {
    TP_CUDA_CHECK(LaunchPdl(MergeSplitsKernel, dim3(b.num_seqs, d.num_heads), dim3(D), 0, stream, part_o,
                            part_lse, out, d.num_heads, D, p.num_splits));
  }
  return absl::OkStatus();
}

template <int D, typename KV>
absl::Status DispatchGroup(int group, const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv,
                           const PagedAttnBatch& b, const DecodePartition& p,
                           void* ws, const AttnDims& d, cudaStream_t stream) {
  switch (group) {
    case 1: return Launch<D, 1, KV>(q, q_stride, out, kv, b, p, ws, d, stream);
    case 2: return Launch<D, 2, KV>(q, q_stride, out, kv, b, p, ws, d, stream);
    case 4: return Launch<D, 4, KV>(q, q_stride, out, kv, b, p, ws, d, stream);
    case 7: return Launch<D, 7, KV>(q, q_stride, out, kv, b, p, ws, d, stream);
    case 8: return Launch<D, 8, KV>(q, q_stride, out, kv, b, p, ws, d, stream);
    default: return absl::UnimplementedError("decode attention: query heads per KV head must be 1, 2, 4, 7 or 8");
  }
}

int MaxChosenSplits() {
  static const int cap = [] {
    const char* v = std::getenv("TPSERVE_DECODE_MAX_SPLITS");
    const int n = v != nullptr ? std::atoi(v) : 0;
    return n >= 1 && n <= kMaxSplits ? n : kMaxSplits;
  }();
  return cap;
}

}  // namespace

DecodePartition ChooseDecodePartition(int num_seqs, int num_kv_heads, int max_context, int num_sms) {
  const int blocks = std::max(1, num_seqs) * std::max(1, num_kv_heads);
  const int target = kDecodeBlocksPerSm * std::max(1, num_sms);
  const int want = (target + blocks - 1) / blocks;
  const int useful = (std::max(1, max_context) + kMinSplitKeys - 1) / kMinSplitKeys;
  DecodePartition p;
  // More splits read long contexts faster (H200, 7B, batch 1: 32k keys in
  // 66 us with 128 splits against 103 us with 32). A batch-1 graph keeps its
  // split count for short contexts too; there the empty splits exit after
  // writing their lse and the merge skips them, so the count only costs
  // launch width. TPSERVE_DECODE_MAX_SPLITS (1-128) caps it for comparisons.
  p.num_splits = std::clamp(std::min(want, useful), 1, MaxChosenSplits());
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
  if (dims.num_kv_heads <= 0 || dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError("attention: num_heads must be a multiple of num_kv_heads");
  }
  if (partition.num_splits < 1 || partition.num_splits > kMaxSplits) {
    return absl::InvalidArgumentError("decode attention: 1 to 128 splits");
  }
  if (batch.num_seqs == 0) return absl::OkStatus();
  const int group = dims.num_heads / dims.num_kv_heads;
  return WithKvElement(kv.dtype, [&](auto tag) -> absl::Status {
    using KV = decltype(tag);
    switch (dims.head_dim) {
      case 32: return DispatchGroup<32, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, stream);
      case 64: return DispatchGroup<64, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, stream);
      case 128: return DispatchGroup<128, KV>(group, q, q_stride, out, kv, batch, partition, workspace, dims, stream);
      default: return absl::UnimplementedError("attention: head_dim must be 32, 64 or 128");
    }
  });
}

}  // namespace tpserve::worker::cuda
