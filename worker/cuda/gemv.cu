#include "worker/cuda/gemv.h"

#include <cuda_fp8.h>

#include "absl/strings/str_cat.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_fp8_mma.h"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

// Small blocks spread the columns evenly over the SMs (every block is resident
// at once, so balance, not waves, decides the tail).
constexpr int kWarpsPerBlock = 4;
constexpr int kUnroll = 8;

// How one 16-byte chunk of a weight row is dotted with the matching inputs.
// bf16 weights: 8 per chunk.
struct Bf16Weights {
  using T = bf16;
  static constexpr int kPerChunk = 8;
  // acc[m] += the chunk's weights · the same inputs of row m.
  template <int M>
  __device__ __forceinline__ static void Dot(const uint4& chunk_bits, const bf16* __restrict__ x, int k,
                                             int chunk, float (&acc)[M]) {
    Pack8 w;
    w.u = chunk_bits;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      Pack8 xv;
      xv.u = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * k) + chunk);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 a = __bfloat1622float2(w.h2[j]), b = __bfloat1622float2(xv.h2[j]);
        acc[m] = fmaf(a.x, b.x, fmaf(a.y, b.y, acc[m]));
      }
    }
  }
};

// FP8 E4M3 weights: 16 per chunk, converted once (E4M3 -> f16 is exact) and
// reused by every input row; the row's scale is applied to the sum.
struct Fp8Weights {
  using T = __nv_fp8_e4m3;
  static constexpr int kPerChunk = 16;
  template <int M>
  __device__ __forceinline__ static void Dot(const uint4& chunk_bits, const bf16* __restrict__ x, int k,
                                             int chunk, float (&acc)[M]) {
    const __nv_fp8x2_storage_t* pairs = reinterpret_cast<const __nv_fp8x2_storage_t*>(&chunk_bits);
    float2 w[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j] = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pairs[j], __NV_E4M3)));
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * k) + 2 * chunk;
      Pack8 lo, hi;
      lo.u = __ldg(xr);
      hi.u = __ldg(xr + 1);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 a = __bfloat1622float2(lo.h2[j]), b = __bfloat1622float2(hi.h2[j]);
        acc[m] = fmaf(w[j].x, a.x, fmaf(w[j].y, a.y, acc[m]));
        acc[m] = fmaf(w[4 + j].x, b.x, fmaf(w[4 + j].y, b.y, acc[m]));
      }
    }
  }
};

// One warp per output column n: lanes stride the weight row in 16-byte
// chunks (kUnroll loads in flight each), every input row reuses each chunk.
// x is tiny and shared by all warps, so it is served from L1/L2. The first
// kUnroll weight chunks are requested before PdlWait(): weights do not
// depend on the previous kernel, so under programmatic dependent launch the
// stream starts while that kernel is still finishing. `scale` (per output
// row, may be null) multiplies the sum before the bias.
template <typename W, int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvKernel(const bf16* __restrict__ x, const typename W::T* __restrict__ w,
               const float* __restrict__ scale, const bf16* __restrict__ bias, void* __restrict__ out,
               bool out_fp32, int n, int k) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) {
    PdlWait();
    PdlTrigger();
    return;
  }
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(row) * k);
  const int chunks = k / W::kPerChunk;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int c = lane;
  uint4 wv[kUnroll];
  bool full = c + 32 * (kUnroll - 1) < chunks;
  if (full) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(wr + c + 32 * u);  // streamed once
  }
  PdlWait();
  PdlTrigger();
  while (full) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) W::template Dot<M>(wv[u], x, k, c + 32 * u, acc);
    c += 32 * kUnroll;
    full = c + 32 * (kUnroll - 1) < chunks;
    if (full) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(wr + c + 32 * u);
    }
  }
  for (; c < chunks; c += 32) W::template Dot<M>(__ldcs(wr + c), x, k, c, acc);
  const float s = scale != nullptr ? scale[row] : 1.0f;
  const float b = bias != nullptr ? __bfloat162float(bias[row]) : 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = WarpSum(acc[m]) * s + b;
    if (lane == 0) StoreOut(out, out_fp32, static_cast<size_t>(m) * n + row, v);
  }
}

// One warp per MLP column i: streams gate row i and up row i together (twice
// the loads in flight) and writes the activation, so the [m, 2 * inter]
// intermediate never exists.
template <typename W, int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvSiluMulKernel(const bf16* __restrict__ x, const typename W::T* __restrict__ w,
                      const float* __restrict__ scale, bf16* __restrict__ out, int inter, int k) {
  const int lane = threadIdx.x & 31;
  const int col = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (col >= inter) {
    PdlWait();
    PdlTrigger();
    return;
  }
  const uint4* gr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(col) * k);
  const uint4* ur = reinterpret_cast<const uint4*>(w + static_cast<size_t>(inter + col) * k);
  const int chunks = k / W::kPerChunk;
  constexpr int kPairs = kUnroll / 2;
  float ga[M], ua[M];
#pragma unroll
  for (int m = 0; m < M; ++m) ga[m] = ua[m] = 0.0f;
  int c = lane;
  uint4 g[kPairs], u[kPairs];
  auto load = [&]() {
#pragma unroll
    for (int v = 0; v < kPairs; ++v) {
      g[v] = __ldcs(gr + c + 32 * v);
      u[v] = __ldcs(ur + c + 32 * v);
    }
  };
  bool full = c + 32 * (kPairs - 1) < chunks;
  if (full) load();  // weights only: before the wait (see GemvKernel)
  PdlWait();
  PdlTrigger();
  while (full) {
#pragma unroll
    for (int v = 0; v < kPairs; ++v) {
      W::template Dot<M>(g[v], x, k, c + 32 * v, ga);
      W::template Dot<M>(u[v], x, k, c + 32 * v, ua);
    }
    c += 32 * kPairs;
    full = c + 32 * (kPairs - 1) < chunks;
    if (full) load();
  }
  for (; c < chunks; c += 32) {
    W::template Dot<M>(__ldcs(gr + c), x, k, c, ga);
    W::template Dot<M>(__ldcs(ur + c), x, k, c, ua);
  }
  const float gscale = scale != nullptr ? scale[col] : 1.0f;
  const float uscale = scale != nullptr ? scale[inter + col] : 1.0f;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float gate = WarpSum(ga[m]) * gscale, up = WarpSum(ua[m]) * uscale;
    if (lane == 0) out[static_cast<size_t>(m) * inter + col] = SiluMulRounded(gate, up);
  }
}

template <typename W, int M>
absl::Status Launch(const bf16* x, const typename W::T* w, const float* scale, const bf16* bias, void* out,
                    bool out_fp32, int n, int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvKernel<W, M>, dim3((n + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, scale, bias, out, out_fp32, n, k));
  return absl::OkStatus();
}

template <typename W, int M>
absl::Status LaunchSiluMul(const bf16* x, const typename W::T* w, const float* scale, bf16* out, int inter,
                           int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvSiluMulKernel<W, M>, dim3((inter + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, scale, out, inter, k));
  return absl::OkStatus();
}

template <typename W>
absl::Status SiluMulRows(const bf16* x, const typename W::T* w, const float* scale, bf16* out, int m,
                         int inter, int k, cudaStream_t stream) {
  if (k % W::kPerChunk != 0 || inter <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GemvSiluMul: k (", k, ") must be a multiple of ", W::kPerChunk, ", inter positive"));
  }
  switch (m) {
    case 1: return LaunchSiluMul<W, 1>(x, w, scale, out, inter, k, stream);
    case 2: return LaunchSiluMul<W, 2>(x, w, scale, out, inter, k, stream);
    case 3: return LaunchSiluMul<W, 3>(x, w, scale, out, inter, k, stream);
    case 4: return LaunchSiluMul<W, 4>(x, w, scale, out, inter, k, stream);
    default: return absl::InvalidArgumentError("GemvSiluMul: 1 to 4 rows");
  }
}

template <typename W>
absl::Status GemvRows(const bf16* x, const typename W::T* w, const float* scale, const bf16* bias, void* out,
                      bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (k % W::kPerChunk != 0 || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gemv: k (", k, ") must be a multiple of ", W::kPerChunk, ", n positive"));
  }
  switch (m) {
    case 1: return Launch<W, 1>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 2: return Launch<W, 2>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 3: return Launch<W, 3>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 4: return Launch<W, 4>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 5: return Launch<W, 5>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 6: return Launch<W, 6>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 7: return Launch<W, 7>(x, w, scale, bias, out, out_fp32, n, k, stream);
    case 8: return Launch<W, 8>(x, w, scale, bias, out, out_fp32, n, k, stream);
    default: return absl::InvalidArgumentError("Gemv: 1 to 8 rows");
  }
}

}  // namespace

absl::Status GemvSiluMul(const bf16* x, const bf16* w, bf16* out, int m, int inter, int k, cudaStream_t stream) {
  return SiluMulRows<Bf16Weights>(x, w, nullptr, out, m, inter, k, stream);
}

absl::Status Gemv(const bf16* x, const bf16* w, const bf16* bias, void* out, bool out_fp32, int m, int n, int k,
                  cudaStream_t stream) {
  return GemvRows<Bf16Weights>(x, w, nullptr, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvFp8(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, const bf16* bias, void* out,
                     bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (GemvFp8MmaTakes(m, k)) return GemvFp8Mma(x, w, w_scale, bias, out, out_fp32, m, n, k, stream);
  return GemvRows<Fp8Weights>(x, w, w_scale, bias, out, out_fp32, m, n, k, stream);
}

absl::Status GemvFp8SiluMul(const bf16* x, const __nv_fp8_e4m3* w, const float* w_scale, bf16* out, int m,
                            int inter, int k, cudaStream_t stream) {
  if (GemvFp8MmaTakes(m, k)) return GemvFp8MmaSiluMul(x, w, w_scale, out, m, inter, k, stream);
  return SiluMulRows<Fp8Weights>(x, w, w_scale, out, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
