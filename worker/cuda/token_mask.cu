#include "worker/cuda/token_mask.h"

#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per token: a warp's 32 tokens share one (broadcast) word and
// its logit loads coalesce.
__global__ void __launch_bounds__(kThreads)
    MaskedCopyKernel(const float* __restrict__ logits, const uint32_t* __restrict__ words,
                     const int* __restrict__ rows, int vocab, int words_per_row,
                     float* __restrict__ out) {
  const int j = blockIdx.y;
  const size_t base = static_cast<size_t>(rows[j]) * vocab;
  const uint32_t* w = words + static_cast<size_t>(j) * words_per_row;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < vocab; t += gridDim.x * blockDim.x) {
    const int word = t >> 5;
    const bool allowed = word < words_per_row && ((w[word] >> (t & 31)) & 1u);
    out[base + t] = allowed ? logits[base + t] : -INFINITY;
  }
}

}  // namespace

absl::Status MaskedCopy(const float* logits, const uint32_t* words, const int* rows, int num_rows,
                        int vocab, int words_per_row, float* out, cudaStream_t stream) {
  if (vocab <= 0 || words_per_row < 0 || num_rows < 0) {
    return absl::InvalidArgumentError("MaskedCopy: bad vocab, words_per_row or num_rows");
  }
  if (num_rows == 0) return absl::OkStatus();
  const int blocks = (vocab + kThreads - 1) / kThreads;
  MaskedCopyKernel<<<dim3(blocks, num_rows), kThreads, 0, stream>>>(logits, words, rows, vocab, words_per_row,
                                                                    out);
  TP_CUDA_CHECK_LAUNCH("MaskedCopyKernel");
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
