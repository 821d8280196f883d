// The rotary rotation itself (nvcc only), shared by RopeAndCacheWrite and the
// decode attention kernel that folds RoPE in: both must produce the same bits
// for the same token, so every product is rounded on its own (no FMA
// contraction, which the compiler may apply differently in each kernel).
#ifndef TPSERVE_WORKER_CUDA_ROPE_CUH_
#define TPSERVE_WORKER_CUDA_ROPE_CUH_

#include <cuda_bf16.h>

namespace tpserve::worker::cuda {

// cos and sin of pair `inv_freq`'s angle at `pos`: float(pos) * inv_freq in
// float32 as in HF, with accurate sincosf because angles reach tens of
// thousands of radians; both then scaled by the attention factor, as HF
// scales its cos/sin cache (YaRN).
__device__ __forceinline__ void RopeAngle(int pos, float inv_freq, float attention_factor, float& s, float& c) {
  sincosf(__fmul_rn(static_cast<float>(pos), inv_freq), &s, &c);
  s = __fmul_rn(s, attention_factor);
  c = __fmul_rn(c, attention_factor);
}

// Neox-style rotation of the pair (a, b) = (x[i], x[i + half]), rounded to
// bf16 as it is stored.
__device__ __forceinline__ void RotatePair(__nv_bfloat16 a, __nv_bfloat16 b, float s, float c, __nv_bfloat16& o1,
                                           __nv_bfloat16& o2) {
  const float x1 = __bfloat162float(a), x2 = __bfloat162float(b);
  o1 = __float2bfloat16(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
  o2 = __float2bfloat16(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ROPE_CUH_
