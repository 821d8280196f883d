#include "worker/cuda/activation.h"

#include <algorithm>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

__global__ void SiluAndMulKernel(const bf16* __restrict__ gate_up, bf16* __restrict__ out,
                                 int inter) {
  PdlWait();
  PdlTrigger();
  const int r = blockIdx.y;
  const int v = blockIdx.x * blockDim.x + threadIdx.x;  // index of 8-wide vector
  if (v * 8 >= inter) return;
  const bf16* g = gate_up + static_cast<size_t>(r) * 2 * inter;
  Pack8 gp, up, o;
  gp.u = reinterpret_cast<const uint4*>(g)[v];
  up.u = reinterpret_cast<const uint4*>(g + inter)[v];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 gf = __bfloat1622float2(gp.h2[j]);
    const __nv_bfloat162 act =
        __floats2bfloat162_rn(gf.x / (1.0f + __expf(-gf.x)), gf.y / (1.0f + __expf(-gf.y)));
    o.h2[j] = __hmul2(act, up.h2[j]);
  }
  reinterpret_cast<uint4*>(out + static_cast<size_t>(r) * inter)[v] = o.u;
}

}  // namespace

absl::Status SiluAndMul(const bf16* gate_up, bf16* out, int rows, int inter, cudaStream_t stream) {
  if (inter % 8 != 0) return absl::InvalidArgumentError("SiluAndMul: inter must be a multiple of 8");
  if (rows == 0) return absl::OkStatus();
  const int vecs = inter / 8;
  dim3 grid((vecs + 127) / 128, rows);
  TP_CUDA_CHECK(LaunchPdl(SiluAndMulKernel, grid, dim3(128), 0, stream, gate_up, out, inter));
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
