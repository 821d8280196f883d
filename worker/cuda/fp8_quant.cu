#include "worker/cuda/fp8_quant.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kQuantThreads = 256;

// One block per row: the row's absolute maximum, then every element divided
// by the scale. The row is read twice; the second read comes from L2 (a row
// is at most a few tens of KB).
__global__ void __launch_bounds__(kQuantThreads)
    QuantizeRowsKernel(const bf16* __restrict__ x, int k, __nv_fp8_e4m3* __restrict__ q, float* __restrict__ scale) {
  __shared__ float scratch[32];
  const size_t base = static_cast<size_t>(blockIdx.x) * k;
  const uint4* xr = reinterpret_cast<const uint4*>(x + base);
  const int chunks = k / 8;
  float amax = 0.0f;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    Pack8 v;
    v.u = xr[c];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(v.h2[j]);
      amax = fmaxf(amax, fmaxf(fabsf(f.x), fabsf(f.y)));
    }
  }
  amax = BlockMax(amax, scratch);
  const float s = amax > 0.0f ? amax / kFp8E4m3Max : 1.0f;
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
  const float inv = 1.0f / s;
  __nv_fp8x2_storage_t* qr = reinterpret_cast<__nv_fp8x2_storage_t*>(q + base);
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    Pack8 v;
    v.u = xr[c];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 f = __bfloat1622float2(v.h2[j]);
      f.x *= inv;
      f.y *= inv;
      qr[4 * c + j] = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3);
    }
  }
}

// Rows over blockIdx.y, columns over x: no per-element division, and the
// row's scale read once.
template <typename T>
__global__ void ScaleProductKernel(T* __restrict__ out, const float* __restrict__ row_scale,
                                   const float* __restrict__ col_scale, const bf16* __restrict__ bias, int m,
                                   int n) {
  for (int r = blockIdx.y; r < m; r += gridDim.y) {
    const float rs = row_scale[r];
    T* o = out + static_cast<size_t>(r) * n;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < n; c += gridDim.x * blockDim.x) {
      float v = static_cast<float>(o[c]) * rs * col_scale[c];
      if (bias != nullptr) v += __bfloat162float(bias[c]);
      o[c] = static_cast<T>(v);
    }
  }
}

}  // namespace

absl::Status QuantizeRowsFp8(const bf16* x, int rows, int k, __nv_fp8_e4m3* q, float* scale, cudaStream_t stream) {
  if (rows < 0 || k <= 0 || k % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizeRowsFp8: rows ", rows, ", k ", k,
                                                   " (k must be a positive multiple of 8)"));
  }
  if (rows == 0) return absl::OkStatus();
  QuantizeRowsKernel<<<rows, kQuantThreads, 0, stream>>>(x, k, q, scale);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status ScaleFp8Product(void* out, bool out_fp32, const float* row_scale, const float* col_scale,
                             const bf16* bias, int m, int n, cudaStream_t stream) {
  if (m < 0 || n <= 0) return absl::InvalidArgumentError(absl::StrCat("ScaleFp8Product: m ", m, ", n ", n));
  if (m == 0) return absl::OkStatus();
  const int threads = 256;
  const dim3 grid(std::min((n + threads - 1) / threads, 64), std::min(m, 8192));
  if (out_fp32) {
    ScaleProductKernel<float><<<grid, threads, 0, stream>>>(static_cast<float*>(out), row_scale, col_scale,
                                                             bias, m, n);
  } else {
    ScaleProductKernel<bf16><<<grid, threads, 0, stream>>>(static_cast<bf16*>(out), row_scale, col_scale, bias,
                                                            m, n);
  }
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
