#include "worker/cuda/gather.h"

#include <algorithm>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

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

absl::Status EmbeddingGather(const int* ids, const bf16* table, bf16* out, int num_tokens,
                             int hidden, int vocab_start, int local_vocab, cudaStream_t stream) {
  if (hidden % 8 != 0) return absl::InvalidArgumentError("Embedding: hidden must be a multiple of 8");
  if (num_tokens == 0) return absl::OkStatus();
  TP_CUDA_CHECK(LaunchPdl(EmbeddingKernel, dim3(num_tokens), dim3(128), 0, stream, ids, table, out, hidden,
                          vocab_start, local_vocab));
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
