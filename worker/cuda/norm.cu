#include "worker/cuda/norm.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row. The first pass writes the summed residual and its sum
// of squares; the second re-reads the row (from L1/L2) to normalise, so any
// hidden size works without a register budget per size.
__global__ void AddRmsNormKernel(const bf16* __restrict__ add, bf16* __restrict__ residual,
                                 const bf16* __restrict__ weight, bf16* __restrict__ out,
                                 int hidden, float eps) {
  __shared__ float scratch[32];
  PdlWait();
  PdlTrigger();
  const size_t base = static_cast<size_t>(blockIdx.x) * hidden;
  const int nvec = hidden / 8;
  uint4* res4 = reinterpret_cast<uint4*>(residual + base);
  float ss = 0.0f;
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
    Pack8 r;
    r.u = res4[i];
    if (add != nullptr) {
      Pack8 a;
      a.u = reinterpret_cast<const uint4*>(add + base)[i];
#pragma unroll
      for (int j = 0; j < 4; ++j) r.h2[j] = __hadd2(r.h2[j], a.h2[j]);
      res4[i] = r.u;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 f = __bfloat1622float2(r.h2[j]);
      ss += f.x * f.x + f.y * f.y;
    }
  }
  ss = BlockSum(ss, scratch);
  const float inv = rsqrtf(ss / hidden + eps);
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
    Pack8 r, w, o;
    r.u = res4[i];
    w.u = reinterpret_cast<const uint4*>(weight)[i];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 f = __bfloat1622float2(r.h2[j]);
      __nv_bfloat162 n = __floats2bfloat162_rn(f.x * inv, f.y * inv);
      o.h2[j] = __hmul2(w.h2[j], n);
    }
    reinterpret_cast<uint4*>(out + base)[i] = o.u;
  }
}

}  // namespace

absl::Status AddRmsNorm(const bf16* add, bf16* residual, const bf16* weight, bf16* out, int rows,
                        int hidden, float eps, cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("AddRmsNorm: hidden must be a multiple of 8");
  if (rows == 0) return absl::OkStatus();
  TP_CUDA_CHECK(LaunchPdl(AddRmsNormKernel, dim3(rows), dim3(kThreads), 0, stream, add, residual, weight, out,
                          hidden, eps));
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
