// SiLU(gate) * up for Qwen2's MLP, and the vocab-parallel embedding gather.
#ifndef TPSERVE_WORKER_CUDA_ACTIVATION_H_
#define TPSERVE_WORKER_CUDA_ACTIVATION_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// `gate_up` has `rows` rows of [gate (inter) | up (inter)];
// out[r, i] = bf16(bf16(silu(gate)) * up), HF's rounding. `inter` must be a
// multiple of 8.
absl::Status SiluAndMul(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int inter,
                        cudaStream_t stream);

// out[t] = table[ids[t] - vocab_start] when the id falls in this rank's
// vocabulary slice [vocab_start, vocab_start + local_vocab), else zeros (the
// all-reduce across ranks then completes the row). Ids outside the whole
// vocabulary also give zeros; the caller validates ids first.
absl::Status EmbeddingGather(const int* ids, const __nv_bfloat16* table, __nv_bfloat16* out,
                             int num_tokens, int hidden, int vocab_start, int local_vocab,
                             cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ACTIVATION_H_
