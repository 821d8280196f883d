#include "worker/cuda/rope_cache.h"

#include <algorithm>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/kv_cache.cuh"
#include "worker/cuda/pdl.cuh"
#include "worker/cuda/rope.cuh"

namespace tpserve::worker::cuda {
namespace {

// One block per token; threads walk (head, pair) for q and k heads, then copy
// v. The rotation is rope.cuh's, the one decode attention's folded RoPE uses.
// T is the cache's element type (ToKv converts; bf16 is a plain copy).
template <typename T>
__global__ void RopeCacheKernel(bf16* __restrict__ qkv, const int* __restrict__ positions,
                                const int* __restrict__ slot_mapping, T* __restrict__ k_cache,
                                T* __restrict__ v_cache, int nh, int nkv, int d, RopeParams rope, float k_inv_scale,
                                float v_inv_scale) {
  const int half = d / 2;
  // The table is a launch parameter (no dependency on earlier kernels): stage
  // it in shared memory before waiting on them.
  __shared__ float inv_freq[kMaxRopePairs];
  for (int i = threadIdx.x; i < half; i += blockDim.x) inv_freq[i] = rope.inv_freq[i];
  __syncthreads();
  PdlWait();
  PdlTrigger();
  const int t = blockIdx.x;
  const int row = (nh + 2 * nkv) * d;
  bf16* x = qkv + static_cast<size_t>(t) * row;
  const int pos = positions[t];
  const int slot = slot_mapping[t];
  const int rot_pairs = (nh + nkv) * half;
  for (int p = threadIdx.x; p < rot_pairs; p += blockDim.x) {
    const int h = p / half, i = p % half;
    float s, c;
    RopeAngle(pos, inv_freq[i], rope.attention_factor, s, c);
    bf16* head = x + h * d;
    bf16 o1, o2;
    RotatePair(head[i], head[i + half], s, c, o1, o2);
    head[i] = o1;
    head[i + half] = o2;
    if (h >= nh && slot >= 0) {
      T* kc = k_cache + (static_cast<size_t>(slot) * nkv + (h - nh)) * d;
      kc[i] = ToKv<T>(o1, k_inv_scale);
      kc[i + half] = ToKv<T>(o2, k_inv_scale);
    }
  }
  if (slot < 0) return;
  const bf16* v = x + (nh + nkv) * d;
  T* vc = v_cache + static_cast<size_t>(slot) * nkv * d;
  for (int e = threadIdx.x; e < nkv * d; e += blockDim.x) vc[e] = ToKv<T>(v[e], v_inv_scale);
}

}  // namespace

absl::Status RopeAndCacheWrite(bf16* qkv, const int* positions, const int* slot_mapping,
                               bf16* k_cache, bf16* v_cache, int num_tokens, const AttnDims& dims,
                               const RopeParams& rope, cudaStream_t stream) {
  return RopeAndCacheWrite(qkv, positions, slot_mapping, Bf16Kv(k_cache, v_cache), num_tokens, dims, rope, stream);
}

absl::Status RopeAndCacheWrite(bf16* qkv, const int* positions, const int* slot_mapping, const KvCacheRef& kv,
                               int num_tokens, const AttnDims& dims, const RopeParams& rope, cudaStream_t stream) {
  if (dims.head_dim % 2 != 0) return absl::InvalidArgumentError("RoPE needs an even head_dim");
  if (dims.head_dim / 2 > kMaxRopePairs) {
    return absl::InvalidArgumentError("RoPE supports head_dim up to 2 * kMaxRopePairs");
  }
  if (num_tokens == 0) return absl::OkStatus();
  // Enough threads that each does one or two (head, pair) rotations: with
  // 256, a decode token's 2,048 pairs (7B) took eight dependent
  // load-rotate-store rounds, 6 us for a few KB.
  const int pairs = (dims.num_heads + dims.num_kv_heads) * (dims.head_dim / 2);
  const int threads = std::clamp((pairs + 31) / 32 * 32, 64, 1024);
  if (!(kv.k_scale > 0.0f && kv.v_scale > 0.0f)) {
    return absl::InvalidArgumentError("KV cache scales must be positive");
  }
  return WithKvElement(kv.dtype, [&](auto tag) -> absl::Status {
    using T = decltype(tag);
    TP_CUDA_CHECK(LaunchPdl(RopeCacheKernel<T>, dim3(num_tokens), dim3(threads), 0, stream, qkv, positions,
                            slot_mapping, static_cast<T*>(kv.k), static_cast<T*>(kv.v), dims.num_heads,
                            dims.num_kv_heads, dims.head_dim, rope, 1.0f / kv.k_scale, 1.0f / kv.v_scale));
    return absl::OkStatus();
  });
}

}  // namespace tpserve::worker::cuda
