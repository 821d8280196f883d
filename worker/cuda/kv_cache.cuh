// Device side of the KV cache's element types (nvcc only): the one dispatch
// from KvCacheDtype to the element type the kernels are instantiated for,
// and the conversions of the FP8 cache (E4M3 codes to bf16 / float on read,
// saturating round-to-nearest-even on write).
#ifndef TPSERVE_WORKER_CUDA_KV_CACHE_CUH_
#define TPSERVE_WORKER_CUDA_KV_CACHE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "worker/cuda/kv_cache_dtype.h"

namespace tpserve::worker::cuda {

using fp8 = __nv_fp8_e4m3;

// Calls f(T{}) with T the element type of `d` (bf16 or fp8): every launcher
// that reads or writes the cache goes through here.
template <typename F>
auto WithKvElement(KvCacheDtype d, F&& f) {
  return d == KvCacheDtype::kFp8E4m3 ? f(fp8{}) : f(__nv_bfloat16{});
}

template <typename T>
inline constexpr bool kIsFp8 = std::is_same_v<T, fp8>;

// x (already rounded to bf16 by the computation) into a cache element:
// bf16 as is; fp8 as E4M3(x * inv_scale), RNE, saturating (NaN stays NaN).
template <typename T>
__device__ __forceinline__ T ToKv(__nv_bfloat16 x, float inv_scale) {
  if constexpr (kIsFp8<T>) {
    fp8 r;
    r.__x = __nv_cvt_float_to_fp8(__bfloat162float(x) * inv_scale, __NV_SATFINITE, __NV_E4M3);
    return r;
  } else {
    return x;
  }
}

// Two E4M3 codes (low byte first) as floats; exact (E4M3 fits in half).
__device__ __forceinline__ float2 Fp8x2ToFloat2(uint16_t codes) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(codes, __NV_E4M3);
  return __half22float2(*reinterpret_cast<const __half2*>(&h));
}

// Eight E4M3 codes (8 bytes) as eight bf16 in 16 bytes (exact: 3 mantissa
// bits, exponents well inside bf16's range).
__device__ __forceinline__ uint4 Fp8x8ToBf16x8(uint2 codes) {
  uint4 out;
  uint32_t* o = &out.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t word = i < 2 ? codes.x : codes.y;
    const float2 f = Fp8x2ToFloat2(static_cast<uint16_t>(word >> (16 * (i & 1))));
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    o[i] = *reinterpret_cast<const uint32_t*>(&b);
  }
  return out;
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_KV_CACHE_CUH_
