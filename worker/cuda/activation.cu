#include "worker/cuda/activation.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {
namespace {

__global__ void SiluAndMulKernel(const bf16* __restrict__ gate_up, bf16* __restrict__ out,
                                 int inter) {
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

__global__ void EmbeddingKernel(const int* __restrict__ ids, const bf16* __restrict__ table,
                                bf16* __restrict__ out, int hidden, int vocab_start,
                                int local_vocab) {
  const int t = blockIdx.x;
  const int local = ids[t] - vocab_start;
  const bool mine = local >= 0 && local < local_vocab;
  uint4* dst = reinterpret_cast<uint4*>(out + static_cast<size_t>(t) * hidden);
  const uint4* src = reinterpret_cast<const uint4*>(table + static_cast<size_t>(mine ? local : 0) * hidden);
  for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
    dst[i] = mine ? src[i] : make_uint4(0, 0, 0, 0);
  }
}

}  // namespace

absl::Status SiluAndMul(const bf16* gate_up, bf16* out, int rows, int inter, cudaStream_t stream) {
  if (inter % 8 != 0) return absl::InvalidArgumentError("SiluAndMul: inter must be a multiple of 8");
  if (rows == 0) return absl::OkStatus();
  const int vecs = inter / 8;
  dim3 grid((vecs + 127) / 128, rows);
  SiluAndMulKernel<<<grid, 128, 0, stream>>>(gate_up, out, inter);
  TP_CUDA_CHECK_LAUNCH("SiluAndMulKernel");
  return absl::OkStatus();
}

absl::Status EmbeddingGather(const int* ids, const bf16* table, bf16* out, int num_tokens,
                             int hidden, int vocab_start, int local_vocab, cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("Embedding: hidden must be a multiple of 8");
  if (num_tokens == 0) return absl::OkStatus();
  EmbeddingKernel<<<num_tokens, 128, 0, stream>>>(ids, table, out, hidden, vocab_start, local_vocab);
  TP_CUDA_CHECK_LAUNCH("EmbeddingKernel");
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
