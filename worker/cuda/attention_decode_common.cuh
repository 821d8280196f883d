// What both decode attention kernels share (nvcc only): the block shape and
// its share of a context, the L2 prefetch before the wait, and the combine of
// the block's warps into the output or the split's partial result; and the
// launcher of the tensor-core kernel (attention_decode_mma.cu), which
// attention_decode.cu calls.
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_DECODE_COMMON_CUH_
#define TPSERVE_WORKER_CUDA_ATTENTION_DECODE_COMMON_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "absl/status/status.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/kv_cache.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {

inline constexpr int kDecodeWarps = 4;
inline constexpr int kMinSplitKeys = 64;  // below this a split is mostly overhead

// Keys of `ctx` given to each split: an even share, rounded up to whole
// 32-key warp chunks, never below kMinSplitKeys.
__device__ __forceinline__ int SplitKeys(int ctx, int num_splits) {
  const int share = (ctx + num_splits - 1) / num_splits;
  return max(kMinSplitKeys, (share + 31) / 32 * 32);
}

// What a decode block (sequence s, KV head kvh, split) works on: query heads
// [h0, h0 + G), keys [start, end) of a context of ctx, block table bt.
struct DecodeBlock {
  int s, kvh, split, h0, ctx, start, end;
  const int* bt;
  __device__ __forceinline__ DecodeBlock(const PagedAttnBatch& b, int group, int num_splits)
      : s(blockIdx.x), kvh(blockIdx.y), split(blockIdx.z), h0(kvh * group), ctx(b.context_len[s]) {
    const int partition = SplitKeys(ctx, num_splits);
    start = split * partition;
    end = min(ctx, start + partition);
    bt = b.block_tables + static_cast<size_t>(s) * b.max_blocks_per_seq;
  }
};

// Asks L2 for the K and V rows of keys [first, last) of one KV head (the
// prefetch does not block, and L2 is coherent, so a row written meanwhile is
// still read correctly later).
template <int D, typename KV>
__device__ __forceinline__ void PrefetchRows(const KV* k_cache, const KV* v_cache, const int* bt, int first, int last,
                                             int bs, int nkv, int kvh) {
  constexpr int kRowBytes = D * static_cast<int>(sizeof(KV));
  constexpr int kLines = (kRowBytes + 127) / 128;
  for (int i = threadIdx.x; i < (last - first) * kLines; i += blockDim.x) {
    const int t = first + i / kLines;
    const size_t row = (static_cast<size_t>(bt[t / bs]) * bs + t % bs) * nkv + kvh;
    const size_t off = row * kRowBytes + (i % kLines) * 128;
    asm volatile("prefetch.global.L2 [%0];" ::"l"(reinterpret_cast<const char*>(k_cache) + off));
    asm volatile("prefetch.global.L2 [%0];" ::"l"(reinterpret_cast<const char*>(v_cache) + off));
  }
}

// The end of a block (after every warp put its running max, sum and
// unnormalised output for each head of the group in shared memory and the
// block synchronised): the warps' parts combined through their maxima, then
// the normalised output (one split) or the split's output and log2-sum-exp
// for the merge.
template <int D, int G, typename KV>
__device__ __forceinline__ void StoreBlockResult(const float (&sm)[kDecodeWarps][G], const float (&sl)[kDecodeWarps][G],
                                                 const float (&so)[kDecodeWarps][G][D], bf16* __restrict__ out,
                                                 float* __restrict__ part_o, float* __restrict__ part_lse, int s,
                                                 int h0, int nh, int split, int num_splits, float v_scale) {
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    const int g = e / D, d = e % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) mx = fmaxf(mx, sm[w][g]);
    float lsum = 0.0f, o = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) {
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

// What a launch of the tensor-core decode kernel takes (grid: sequences x KV
// heads x splits; k and v: the caches, of the element type `dtype` names).
struct DecodeMmaLaunch {
  const bf16* q;
  int q_stride;
  bf16* out;
  float* part_o;
  float* part_lse;
  const void* k_cache;
  const void* v_cache;
  PagedAttnBatch batch;
  int num_heads, num_kv_heads, block_size;
  float scale_log2, v_scale;
  int num_splits, prefetch_keys;
  cudaStream_t stream;
};
// Head dimensions the tensor-core kernel is built for (the Qwen2 family's);
// others run the FMA kernels.
inline constexpr bool DecodeMmaTakes(int head_dim) { return head_dim == 64 || head_dim == 128; }
// Launches DecodeMmaKernel (attention_decode_mma.cu, its own file so that
// nvcc builds the two kernel sets in parallel); `group` query heads a KV head.
absl::Status LaunchDecodeMma(int head_dim, int group, KvCacheDtype dtype, const DecodeMmaLaunch& l);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_DECODE_COMMON_CUH_
