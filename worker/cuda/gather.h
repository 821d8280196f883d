// Row movement: the vocab-parallel embedding gather, the gather of sampled
// rows before lm_head, and the reorder of all-gathered vocab-parallel logits.
#ifndef TPSERVE_WORKER_CUDA_GATHER_H_
#define TPSERVE_WORKER_CUDA_GATHER_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// out[t] = table[ids[t] - vocab_start] when the id falls in this rank's
// vocabulary slice [vocab_start, vocab_start + local_vocab), else zeros (the
// all-reduce across ranks then completes the row). Ids outside the whole
// vocabulary also give zeros; the caller validates ids first.
absl::Status EmbeddingGather(const int* ids, const __nv_bfloat16* table, __nv_bfloat16* out,
                             int num_tokens, int hidden, int vocab_start, int local_vocab,
                             cudaStream_t stream);

// out[i] = in[rows[i]] for `num_rows` rows of `hidden` bf16 values (the
// positions that sample, before lm_head). `hidden` must be a multiple of 8.
absl::Status GatherRows(const __nv_bfloat16* in, const int* rows, __nv_bfloat16* out, int num_rows,
                        int hidden, cudaStream_t stream);

// Reorders all-gathered vocab-parallel logits [world][rows][shard_vocab]
// into [rows][vocab], dropping the padding columns past `vocab`.
absl::Status VocabShardsToRows(const float* gathered, float* out, int world_size, int rows,
                               int shard_vocab, int vocab, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GATHER_H_
