#include "worker/cuda/norm.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/norm.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kThreads = kNormThreads;

// The 8 values at vector index i of an `add` row as bf16: bf16 rows as they
// are, float32 rows (TP all-reduce sums) rounded once, as Float32ToBf16 would.
__device__ __forceinline__ uint4 LoadAdd8(const bf16* add, size_t base, int i) {
  return reinterpret_cast<const uint4*>(add + base)[i];
}
__device__ __forceinline__ uint4 LoadAdd8(const float* add, size_t base, int i) {
  const float4* p = reinterpret_cast<const float4*>(add + base) + 2 * i;
  return RoundPack8(p[0], p[1]);
}

// One block per row. The first pass writes the summed residual and its sum
// of squares; the second re-reads the row (from L1/L2) to normalise, so any
// hidden size works without a register budget per size.
template <typename AddT>
__global__ void AddRmsNormKernel(const AddT* __restrict__ add, bf16* __restrict__ residual,
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
      a.u = LoadAdd8(add, base, i);
      AddPack8(r, a);
      res4[i] = r.u;
    }
    AddSquares(r, ss);
  }
  const float inv = RmsInverse(BlockSum(ss, scratch), hidden, eps);
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
    Pack8 r, w;
    r.u = res4[i];
    w.u = reinterpret_cast<const uint4*>(weight)[i];
    reinterpret_cast<uint4*>(out + base)[i] = NormalizePack8(r, w, inv);
  }
}

// The same sums for rows of at most kThreads * kVecs * 8 values, with the
// row in registers: the norm weight is loaded before PdlWait() (it does not
// depend on the kernel before), the row and the addend in one round of
// loads after it, so the kernel waits on memory twice instead of four times
// (a decode step runs two of these per layer). Thread t owns vectors t,
// t + kThreads, ... and sums them in the same order as the loop above.
template <typename AddT, int kVecs>
__global__ void AddRmsNormRegsKernel(const AddT* __restrict__ add, bf16* __restrict__ residual,
                                     const bf16* __restrict__ weight, bf16* __restrict__ out, int hidden,
                                     float eps) {
  __shared__ float scratch[32];
  const int nvec = hidden / 8;
  Pack8 w[kVecs], r[kVecs];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < nvec) w[j].u = reinterpret_cast<const uint4*>(weight)[i];
  }
  PdlWait();
  PdlTrigger();
  const size_t base = static_cast<size_t>(blockIdx.x) * hidden;
  uint4* res4 = reinterpret_cast<uint4*>(residual + base);
  Pack8 a[kVecs];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < nvec) {
      r[j].u = res4[i];
      if (add != nullptr) a[j].u = LoadAdd8(add, base, i);
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i >= nvec) continue;
    if (add != nullptr) {
      AddPack8(r[j], a[j]);
      res4[i] = r[j].u;
    }
    AddSquares(r[j], ss);
  }
  const float inv = RmsInverse(BlockSum(ss, scratch), hidden, eps);
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < nvec) reinterpret_cast<uint4*>(out + base)[i] = NormalizePack8(r[j], w[j], inv);
  }
}

template <typename AddT>
absl::Status Launch(const AddT* add, bf16* residual, const bf16* weight, bf16* out, int rows, int hidden,
                    float eps, cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("AddRmsNorm: hidden must be a multiple of 8");
  if (rows == 0) return absl::OkStatus();
  const int per_thread = (hidden / 8 + kThreads - 1) / kThreads;
  auto kernel = per_thread <= 1   ? AddRmsNormRegsKernel<AddT, 1>
                : per_thread <= 2 ? AddRmsNormRegsKernel<AddT, 2>
                : per_thread <= 4 ? AddRmsNormRegsKernel<AddT, 4>
                                  : AddRmsNormKernel<AddT>;
  TP_CUDA_CHECK(LaunchPdl(kernel, dim3(rows), dim3(kThreads), 0, stream, add, residual, weight, out, hidden, eps));
  return absl::OkStatus();
}

}  // namespace

absl::Status AddRmsNorm(const bf16* add, bf16* residual, const bf16* weight, bf16* out, int rows,
                        int hidden, float eps, cudaStream_t stream) {
  return Launch(add, residual, weight, out, rows, hidden, eps, stream);
}

absl::Status AddRmsNorm(const float* add, bf16* residual, const bf16* weight, bf16* out, int rows,
                        int hidden, float eps, cudaStream_t stream) {
  return Launch(add, residual, weight, out, rows, hidden, eps, stream);
}

}  // namespace tpserve::worker::cuda
