#include "worker/cuda/gemv.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {
namespace {

// Small blocks spread the columns evenly over the SMs (every block is resident
// at once, so balance, not waves, decides the tail).
constexpr int kWarpsPerBlock = 4;
constexpr int kUnroll = 4;

// One warp per output column n: lanes stride the weight row in 16-byte
// chunks (kUnroll loads in flight each), every input row reuses each chunk.
// x is tiny and shared by all warps, so it is served from L1/L2.
template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvKernel(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,
               void* __restrict__ out, bool out_fp32, int n, int k) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(row) * k);
  const int chunks = k / 8;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int c = lane;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    Pack8 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u].u = __ldcs(wr + c + 32 * u);  // streamed once
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        Pack8 xv;
        xv.u = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * k) + c + 32 * u);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 a = __bfloat1622float2(wv[u].h2[j]), b = __bfloat1622float2(xv.h2[j]);
          acc[m] = fmaf(a.x, b.x, fmaf(a.y, b.y, acc[m]));
        }
      }
    }
  }
  for (; c < chunks; c += 32) {
    Pack8 wv;
    wv.u = __ldcs(wr + c);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      Pack8 xv;
      xv.u = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * k) + c);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 a = __bfloat1622float2(wv.h2[j]), b = __bfloat1622float2(xv.h2[j]);
        acc[m] = fmaf(a.x, b.x, fmaf(a.y, b.y, acc[m]));
      }
    }
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

template <int M>
absl::Status Launch(const bf16* x, const bf16* w, const bf16* bias, void* out, bool out_fp32, int n,
                    int k, cudaStream_t stream) {
  GemvKernel<M><<<(n + kWarpsPerBlock - 1) / kWarpsPerBlock, kWarpsPerBlock * 32, 0, stream>>>(
      x, w, bias, out, out_fp32, n, k);
  TP_CUDA_CHECK_LAUNCH("GemvKernel");
  return absl::OkStatus();
}

}  // namespace

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
