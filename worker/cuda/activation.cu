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

__global__ void EmbeddingKernel(const int* __restrict__ ids, const bf16* __restrict__ table,
                                bf16* __restrict__ out, int hidden, int vocab_start,
                                int local_vocab) {
  PdlWait();
  PdlTrigger();
  const int t = blockIdx.x;
  const int local = ids[t] - vocab_start;
  const bool mine = local >= 0 && local < local_vocab;
  uint4* dst = reinterpret_cast<uint4*>(out + static_cast<size_t>(t) * hidden);
  const uint4* src = reinterpret_cast<const uint4*>(table + static_cast<size_t>(mine ? local : 0) * hidden);
  for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
    dst[i] = mine ? src[i] : make_uint4(0, 0, 0, 0);
  }
}

__global__ void GatherRowsKernel(const bf16* __restrict__ in, const int* __restrict__ rows,
                                 bf16* __restrict__ out, int hidden) {
  PdlWait();
  PdlTrigger();
  const uint4* src = reinterpret_cast<const uint4*>(in + static_cast<size_t>(rows[blockIdx.x]) * hidden);
  uint4* dst = reinterpret_cast<uint4*>(out + static_cast<size_t>(blockIdx.x) * hidden);
  for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) dst[i] = src[i];
}

__global__ void VocabShardsKernel(const float* __restrict__ g, float* __restrict__ out, int world,
                                  int rows, int shard, int vocab) {
  PdlWait();
  PdlTrigger();
  const int r = blockIdx.y;
  for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < vocab; v += gridDim.x * blockDim.x) {
    const int w = v / shard, i = v % shard;
    out[static_cast<size_t>(r) * vocab + v] = g[(static_cast<size_t>(w) * rows + r) * shard + i];
  }
}

__device__ __forceinline__ uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void FillUniformKernel(bf16* __restrict__ p, size_t n, uint64_t seed, float lo, float hi) {
  const uint64_t key = Mix64(seed);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(Mix64(key ^ i) >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2bfloat16(lo + (hi - lo) * u);
  }
}

}  // namespace

absl::Status GatherRows(const bf16* in, const int* rows, bf16* out, int num_rows, int hidden,
                        cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("GatherRows: hidden must be a multiple of 8");
  if (num_rows == 0) return absl::OkStatus();
  TP_CUDA_CHECK(LaunchPdl(GatherRowsKernel, dim3(num_rows), dim3(128), 0, stream, in, rows, out, hidden));
  return absl::OkStatus();
}

absl::Status VocabShardsToRows(const float* gathered, float* out, int world_size, int rows,
                               int shard_vocab, int vocab, cudaStream_t stream) {
  if (rows == 0) return absl::OkStatus();
  TP_CUDA_CHECK(LaunchPdl(VocabShardsKernel, dim3(64, rows), dim3(256), 0, stream, gathered, out, world_size, rows,
                          shard_vocab, vocab));
  return absl::OkStatus();
}

absl::Status FillUniformBf16(bf16* p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  FillUniformKernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  TP_CUDA_CHECK_LAUNCH("FillUniformKernel");
  return absl::OkStatus();
}

absl::Status SiluAndMul(const bf16* gate_up, bf16* out, int rows, int inter, cudaStream_t stream) {
  if (inter % 8 != 0) return absl::InvalidArgumentError("SiluAndMul: inter must be a multiple of 8");
  if (rows == 0) return absl::OkStatus();
  const int vecs = inter / 8;
  dim3 grid((vecs + 127) / 128, rows);
  TP_CUDA_CHECK(LaunchPdl(SiluAndMulKernel, grid, dim3(128), 0, stream, gate_up, out, inter));
  return absl::OkStatus();
}

absl::Status EmbeddingGather(const int* ids, const bf16* table, bf16* out, int num_tokens,
                             int hidden, int vocab_start, int local_vocab, cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("Embedding: hidden must be a multiple of 8");
  if (num_tokens == 0) return absl::OkStatus();
  TP_CUDA_CHECK(LaunchPdl(EmbeddingKernel, dim3(num_tokens), dim3(128), 0, stream, ids, table, out, hidden,
                          vocab_start, local_vocab));
  return absl::OkStatus();
}

namespace {
__global__ void Float32ToBf16Kernel(const float* __restrict__ in, bf16* __restrict__ out, size_t n) {
  PdlWait();
  PdlTrigger();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16_rn(in[i]);
  }
}
}  // namespace

absl::Status Float32ToBf16(const float* in, bf16* out, size_t n, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<size_t>((n + threads - 1) / threads, 4096));
  TP_CUDA_CHECK(LaunchPdl(Float32ToBf16Kernel, dim3(blocks), dim3(threads), 0, stream, in, out, n));
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
