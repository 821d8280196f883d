// The per-vector arithmetic of AddRmsNorm (norm.h), shared by its kernels
// (norm.cu) and the all-reduce fused with it (allreduce.cu), so that both give
// the same bits by construction: the same roundings of float32 sums, the same
// adds, the same sums of squares, the same normalisation.
#ifndef TPSERVE_WORKER_CUDA_NORM_CUH_
#define TPSERVE_WORKER_CUDA_NORM_CUH_

#include <cuda_bf16.h>

#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {

// AddRmsNorm's block: thread t owns the 8-value vectors t, t + kNormThreads,
// ... of a row and adds their squares in that order before the block sum.
inline constexpr int kNormThreads = 256;

// Eight float32 values (an all-reduce's sums) rounded to bf16 once each.
__device__ __forceinline__ uint4 RoundPack8(const float4& lo, const float4& hi) {
  Pack8 a;
  a.h2[0] = __floats2bfloat162_rn(lo.x, lo.y);
  a.h2[1] = __floats2bfloat162_rn(lo.z, lo.w);
  a.h2[2] = __floats2bfloat162_rn(hi.x, hi.y);
  a.h2[3] = __floats2bfloat162_rn(hi.z, hi.w);
  return a.u;
}

// r += a, rounded to bf16 per value.
__device__ __forceinline__ void AddPack8(Pack8& r, const Pack8& a) {
#pragma unroll
  for (int j = 0; j < 4; ++j) r.h2[j] = __hadd2(r.h2[j], a.h2[j]);
}

// ss += the squares of r's values, in order.
__device__ __forceinline__ void AddSquares(const Pack8& r, float& ss) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(r.h2[j]);
    ss += f.x * f.x + f.y * f.y;
  }
}

__device__ __forceinline__ float RmsInverse(float ss, int hidden, float eps) { return rsqrtf(ss / hidden + eps); }

// weight * bf16(r * inv): the HF reference's two roundings.
__device__ __forceinline__ uint4 NormalizePack8(const Pack8& r, const Pack8& w, float inv) {
  Pack8 o;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(r.h2[j]);
    o.h2[j] = __hmul2(w.h2[j], __floats2bfloat162_rn(f.x * inv, f.y * inv));
  }
  return o.u;
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_NORM_CUH_
