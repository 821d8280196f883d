#include "worker/cuda/fill.h"

#include <algorithm>

#include "common/hash.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

__global__ void FillUniformKernel(bf16* __restrict__ p, size_t n, uint64_t seed, float lo, float hi) {
  const uint64_t key = SplitMix64(seed);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(SplitMix64(key ^ i) >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2bfloat16(lo + (hi - lo) * u);
  }
}

__global__ void Float32ToBf16Kernel(const float* __restrict__ in, bf16* __restrict__ out, size_t n) {
  PdlWait();
  PdlTrigger();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16_rn(in[i]);
  }
}
}  // namespace

absl::Status FillUniformBf16(bf16* p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  FillUniformKernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  TP_CUDA_CHECK_LAUNCH("FillUniformKernel");
  return absl::OkStatus();
}

absl::Status Float32ToBf16(const float* in, bf16* out, size_t n, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<size_t>((n + threads - 1) / threads, 4096));
  TP_CUDA_CHECK(LaunchPdl(Float32ToBf16Kernel, dim3(blocks), dim3(threads), 0, stream, in, out, n));
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
