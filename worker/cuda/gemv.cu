#include "worker/cuda/gemv.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

// Small blocks spread the columns evenly over the SMs (every block is resident
// at once, so balance, not waves, decides the tail).
constexpr int kWarpsPerBlock = 4;
constexpr int kUnroll = 8;

// acc[m] += the 8 weights of one 16-byte chunk · the same 8 inputs of row m.
template <int M>
__device__ __forceinline__ void Dot8(const Pack8& w, const bf16* __restrict__ x, int k, int chunk,
                                     float (&acc)[M]) {
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

// One warp per output column n: lanes stride the weight row in 16-byte
// chunks (kUnroll loads in flight each), every input row reuses each chunk.
// x is tiny and shared by all warps, so it is served from L1/L2. The first
// kUnroll weight chunks are requested before PdlWait(): weights do not
// depend on the previous kernel, so under programmatic dependent launch the
// stream starts while that kernel is still finishing.
template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvKernel(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,
               void* __restrict__ out, bool out_fp32, int n, int k) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) {
    PdlWait();
    PdlTrigger();
    return;
  }
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(row) * k);
  const int chunks = k / 8;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int c = lane;
  Pack8 wv[kUnroll];
  bool full = c + 32 * (kUnroll - 1) < chunks;
  if (full) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u].u = __ldcs(wr + c + 32 * u);  // streamed once
  }
  PdlWait();
  PdlTrigger();
  while (full) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) Dot8<M>(wv[u], x, k, c + 32 * u, acc);
    c += 32 * kUnroll;
    full = c + 32 * (kUnroll - 1) < chunks;
    if (full) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) wv[u].u = __ldcs(wr + c + 32 * u);
    }
  }
  for (; c < chunks; c += 32) {
    Pack8 wt;
    wt.u = __ldcs(wr + c);
    Dot8<M>(wt, x, k, c, acc);
  }
  const float b = bias != nullptr ? __bfloat162float(bias[row]) : 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = WarpSum(acc[m]) + b;
    if (lane == 0) {
      const size_t idx = static_cast<size_t>(m) * n + row;
      if (out_fp32) {
        static_cast<float*>(out)[idx] = v;
      } else {
        static_cast<bf16*>(out)[idx] = __float2bfloat16(v);
      }
    }
  }
}

// One warp per MLP column i: streams gate row i and up row i together (twice
// the loads in flight) and writes the activation, so the [m, 2 * inter]
// intermediate never exists.
template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvSiluMulKernel(const bf16* __restrict__ x, const bf16* __restrict__ w, bf16* __restrict__ out,
                      int inter, int k) {
  const int lane = threadIdx.x & 31;
  const int col = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (col >= inter) {
    PdlWait();
    PdlTrigger();
    return;
  }
  const uint4* gr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(col) * k);
  const uint4* ur = reinterpret_cast<const uint4*>(w + static_cast<size_t>(inter + col) * k);
  const int chunks = k / 8;
  constexpr int kPairs = kUnroll / 2;
  float ga[M], ua[M];
#pragma unroll
  for (int m = 0; m < M; ++m) ga[m] = ua[m] = 0.0f;
  int c = lane;
  Pack8 g[kPairs], u[kPairs];
  auto load = [&]() {
#pragma unroll
    for (int v = 0; v < kPairs; ++v) {
      g[v].u = __ldcs(gr + c + 32 * v);
      u[v].u = __ldcs(ur + c + 32 * v);
    }
  };
  bool full = c + 32 * (kPairs - 1) < chunks;
  if (full) load();  // weights only: before the wait (see GemvKernel)
  PdlWait();
  PdlTrigger();
  while (full) {
#pragma unroll
    for (int v = 0; v < kPairs; ++v) {
      Dot8<M>(g[v], x, k, c + 32 * v, ga);
      Dot8<M>(u[v], x, k, c + 32 * v, ua);
    }
    c += 32 * kPairs;
    full = c + 32 * (kPairs - 1) < chunks;
    if (full) load();
  }
  for (; c < chunks; c += 32) {
    Pack8 gt, ut;
    gt.u = __ldcs(gr + c);
    ut.u = __ldcs(ur + c);
    Dot8<M>(gt, x, k, c, ga);
    Dot8<M>(ut, x, k, c, ua);
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float gs = __bfloat162float(__float2bfloat16(WarpSum(ga[m])));
    const float us = __bfloat162float(__float2bfloat16(WarpSum(ua[m])));
    if (lane == 0) {
      const float act = __bfloat162float(__float2bfloat16(gs / (1.0f + __expf(-gs))));
      out[static_cast<size_t>(m) * inter + col] = __float2bfloat16(act * us);
    }
  }
}

template <int M>
absl::Status Launch(const bf16* x, const bf16* w, const bf16* bias, void* out, bool out_fp32, int n,
                    int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvKernel<M>, dim3((n + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, bias, out, out_fp32, n, k));
  return absl::OkStatus();
}

template <int M>
absl::Status LaunchSiluMul(const bf16* x, const bf16* w, bf16* out, int inter, int k, cudaStream_t stream) {
  TP_CUDA_CHECK(LaunchPdl(GemvSiluMulKernel<M>, dim3((inter + kWarpsPerBlock - 1) / kWarpsPerBlock),
                          dim3(kWarpsPerBlock * 32), 0, stream, x, w, out, inter, k));
  return absl::OkStatus();
}

}  // namespace

absl::Status GemvSiluMul(const bf16* x, const bf16* w, bf16* out, int m, int inter, int k,
                         cudaStream_t stream) {
  if (k % 8 != 0 || inter <= 0) return absl::InvalidArgumentError("GemvSiluMul: k must be a multiple of 8");
  switch (m) {
    case 1: return LaunchSiluMul<1>(x, w, out, inter, k, stream);
    case 2: return LaunchSiluMul<2>(x, w, out, inter, k, stream);
    case 3: return LaunchSiluMul<3>(x, w, out, inter, k, stream);
    case 4: return LaunchSiluMul<4>(x, w, out, inter, k, stream);
    default: return absl::InvalidArgumentError("GemvSiluMul: 1 to 4 rows");
  }
}

absl::Status Gemv(const bf16* x, const bf16* w, const bf16* bias, void* out, bool out_fp32, int m,
                  int n, int k, cudaStream_t stream) {
  if (k % 8 != 0 || n <= 0) return absl::InvalidArgumentError("Gemv: k must be a multiple of 8, n positive");
  switch (m) {
    case 1: return Launch<1>(x, w, bias, out, out_fp32, n, k, stream);
    case 2: return Launch<2>(x, w, bias, out, out_fp32, n, k, stream);
    case 3: return Launch<3>(x, w, bias, out, out_fp32, n, k, stream);
    case 4: return Launch<4>(x, w, bias, out, out_fp32, n, k, stream);
    case 5: return Launch<5>(x, w, bias, out, out_fp32, n, k, stream);
    case 6: return Launch<6>(x, w, bias, out, out_fp32, n, k, stream);
    case 7: return Launch<7>(x, w, bias, out, out_fp32, n, k, stream);
    case 8: return Launch<8>(x, w, bias, out, out_fp32, n, k, stream);
    default: return absl::InvalidArgumentError("Gemv: 1 to 8 rows");
  }
}

}  // namespace tpserve::worker::cuda
