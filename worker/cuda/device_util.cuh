// Small device helpers shared by the kernels (nvcc only).
#ifndef TPSERVE_WORKER_CUDA_DEVICE_UTIL_CUH_
#define TPSERVE_WORKER_CUDA_DEVICE_UTIL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace tpserve::worker::cuda {

using bf16 = __nv_bfloat16;

// Sum over the 32 lanes of a warp, result in every lane.
// Writes one GEMV output element: fp32 (logits) or bf16 (activations).
__device__ __forceinline__ void StoreOut(void* out, bool out_fp32, size_t idx, float v) {
  if (out_fp32) {
    static_cast<float*>(out)[idx] = v;
  } else {
    static_cast<__nv_bfloat16*>(out)[idx] = __float2bfloat16(v);
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Qwen2's MLP activation from the fused gate_up GEMVs' float sums, with the
// roundings of the unfused path: bf16(silu(bf16(gate)) * bf16(up)), silu's
// result rounded to bf16 too.
__device__ __forceinline__ __nv_bfloat16 SiluMulRounded(float gate, float up) {
  const float gs = __bfloat162float(__float2bfloat16(gate));
  const float us = __bfloat162float(__float2bfloat16(up));
  const float act = __bfloat162float(__float2bfloat16(gs / (1.0f + __expf(-gs))));
  return __float2bfloat16(act * us);
}

// c += A * B on the tensor cores (mma.sync m16n8k16, sm_80+) with fp32
// sums: A 16 x 16 (a0..a3), B 16 x 8 (b0, b1) in the PTX fragment layout;
// T is the inputs' type, __nv_bfloat16 or __half. The one wrapper the
// kernels share (the decode attention's MmaTopRows is a narrower form).
template <typename T>
__device__ __forceinline__ void MmaM16N8K16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                            uint32_t b0, uint32_t b1) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>);
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// Max over the 32 lanes of a warp, result in every lane.
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The argmax tie rule every sampling kernel shares (greedy picks the lowest
// id among equal logits, as the CPU sampler does): (v, i) becomes (ov, oi)
// when ov is larger, or equal with a lower index. NaN never wins.
__device__ __forceinline__ void KeepArgmax(float ov, int oi, float& v, int& i) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// Argmax over the 32 lanes of a warp, ties to the lower index; the value and
// its index in every lane. A lane with nothing holds (-inf, INT_MAX).
__device__ __forceinline__ void WarpArgmax(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    KeepArgmax(__shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o), v, i);
  }
}

// Sum over a block of at most 1024 threads; `scratch` holds 32 floats.
// Every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = lane < nwarps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

// Max over a block of at most 1024 threads; `scratch` holds 32 floats.
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = lane < nwarps ? scratch[lane] : -INFINITY;
  return WarpMax(v);
}

// Eight bf16 values moved as one 16-byte word.
union Pack8 {
  uint4 u;
  __nv_bfloat162 h2[4];
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_DEVICE_UTIL_CUH_
