// Structured output on the GPU: a row of logits restricted to the tokens a
// bitmask allows (the grammar's mask, ANDed with allowed_token_ids on the
// host), for the sampler to continue from.
#ifndef TPSERVE_WORKER_CUDA_TOKEN_MASK_H_
#define TPSERVE_WORKER_CUDA_TOKEN_MASK_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// For j in [0, num_rows), r = rows[j]: out[r][t] = logits[r][t] where bit
// t % 32 of words[j * words_per_row + t / 32] is set, else -inf (tokens past
// the words' 32 * words_per_row bits too, as the CPU sampler does). Rows
// are `vocab` floats apart in both matrices; `rows` and `words` are device
// arrays.
absl::Status MaskedCopy(const float* logits, const uint32_t* words, const int* rows, int num_rows,
                        int vocab, int words_per_row, float* out, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_TOKEN_MASK_H_
