// Rotary position embedding (neox style: the two halves of each head are
// rotated as pairs) fused with the write of K and V into the paged cache.
#ifndef TPSERVE_WORKER_CUDA_ROPE_CACHE_H_
#define TPSERVE_WORKER_CUDA_ROPE_CACHE_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "worker/cuda/kv_cache_dtype.h"

namespace tpserve::worker::cuda {

// Shapes of one rank's attention (heads already divided by tensor
// parallelism).
struct AttnDims {
  int num_heads = 0;     // query heads on this rank
  int num_kv_heads = 0;  // key/value heads on this rank
  int head_dim = 0;
  int block_size = 16;   // tokens per KV block
};

// Most rotation pairs a head may have (head_dim <= 256).
inline constexpr int kMaxRopePairs = 128;

// The rotary table (common/model/rope.h's RopeTable), passed by value with
// each launch: no device buffer, and decode graphs capture it as a constant.
struct RopeParams {
  float inv_freq[kMaxRopePairs] = {};  // head_dim / 2 used
  float attention_factor = 1.0f;       // multiplies cos and sin (YaRN)
};

// One layer's paged K and V caches ([slot][kv_head][head_dim] each) and
// their element type. FP8: value = code * scale, per tensor (1.0 unless a
// checkpoint's scales are loaded; see docs/quantization.md).
struct KvCacheRef {
  void* k = nullptr;
  void* v = nullptr;
  KvCacheDtype dtype = KvCacheDtype::kBf16;
  float k_scale = 1.0f;
  float v_scale = 1.0f;
};

// A bf16 cache pair as a KvCacheRef.
inline KvCacheRef Bf16Kv(const __nv_bfloat16* k, const __nv_bfloat16* v) {
  return {const_cast<__nv_bfloat16*>(k), const_cast<__nv_bfloat16*>(v), KvCacheDtype::kBf16, 1.0f, 1.0f};
}

// `qkv` holds `num_tokens` rows of [q (num_heads*head_dim) | k | v]. Rotates
// q and k in place by `positions[t]` * rope.inv_freq, then stores k and v at
// cache slot `slot_mapping[t]` (skipped when negative: padding rows). Caches
// are laid out [slot][kv_head][head_dim] with slot = block * block_size +
// offset.
absl::Status RopeAndCacheWrite(__nv_bfloat16* qkv, const int* positions, const int* slot_mapping,
                               __nv_bfloat16* k_cache, __nv_bfloat16* v_cache, int num_tokens,
                               const AttnDims& dims, const RopeParams& rope, cudaStream_t stream);
// The same into a cache of either element type: an FP8 cache stores
// E4M3(k / k_scale) and E4M3(v / v_scale) of the bf16-rounded rotated k and
// v (q and the qkv rows are written exactly as above).
absl::Status RopeAndCacheWrite(__nv_bfloat16* qkv, const int* positions, const int* slot_mapping,
                               const KvCacheRef& kv, int num_tokens, const AttnDims& dims, const RopeParams& rope,
                               cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ROPE_CACHE_H_
