// Sampling kernels. The rule (shared with the CPU backend through
// worker/model/sampling_rng.h): the token mask (token_mask.h), logit_bias,
// min_tokens masking and penalties on the logits; temperature 0 is greedy
// (argmax, ties to the lower id); otherwise
// p = softmax(logits / T), then top-k, then top-p over the top-k mass (the
// smallest prefix reaching top_p), then min-p (p >= min_p * p_max); the
// survivors ordered by p (descending, ties by lower id), and the first whose
// cumulative p exceeds u * total is drawn, u = SampleUniform(seed, index).
#ifndef TPSERVE_WORKER_CUDA_SAMPLING_H_
#define TPSERVE_WORKER_CUDA_SAMPLING_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// One logit change before sampling, in the CPU sampler's order: logit_bias
// added, then a min_tokens mask, or the penalties of a token that appeared
// in prompt or outputs (output_count occurrences in the outputs).
struct LogitEdit {
  int token = 0;
  int output_count = 0;
  int mask = 0;  // 1: the token may not be sampled yet
  int seen = 0;  // 1: in the prompt or outputs (penalties apply)
  float bias = 0.0f;
};

// Per-row parameters, uploaded once per step.
struct SampleRowParams {
  float temperature = 0.0f;
  float top_p = 1.0f;
  float min_p = 0.0f;
  int top_k = 0;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  int edit_begin = 0, edit_end = 0;  // range in the LogitEdit array
  int row = 0;                       // row of the logits matrix
  // 1: `processed` already holds this row's logits with the token mask
  // applied (MaskedCopy, token_mask.h); 0: SamplePrepare copies them.
  int premasked = 0;
  uint64_t seed = 0;
  uint64_t output_index = 0;
};

// Stage 1, every row: lse[row] = logsumexp(logits[row]) (raw logits, for
// logprobs); processed[row] = logits (or, premasked, what it holds) with
// edits applied; greedy rows get
// tokens[row] now; sampling rows get keys = exp((x - max) / T) and
// values = ids, ready for a descending sort.
// `workspace`: SamplePrepareWorkspaceBytes(num_rows) bytes of device memory.
// Each row's vocabulary is split over SamplePrepareParts(num_rows, vocab)
// blocks (two kernels: per-slice partials, then their combination), so a
// small batch still spreads over the GPU.
absl::Status SamplePrepare(const float* logits, const SampleRowParams* params, int num_rows,
                           const LogitEdit* edits, int vocab, float* processed, float* lse,
                           int* tokens, float* keys, int* values, void* workspace, cudaStream_t stream);
size_t SamplePrepareWorkspaceBytes(int max_rows);
int SamplePrepareParts(int num_rows, int vocab);

// Bytes of temporary storage SortRowsDescending needs for up to
// `max_segments` rows inside a buffer of `num_items` elements.
absl::Status SortTempBytes(int max_segments, int num_items, size_t* bytes);
// Sorts `num_segments` rows of (keys, values) by key, descending and stable
// (equal keys keep ascending ids). Segment j spans [begin[j], end[j]) in
// both input and output buffers (device int arrays).
absl::Status SortRowsDescending(const float* keys_in, float* keys_out, const int* values_in,
                                int* values_out, int num_segments, int num_items, const int* begin,
                                const int* end, void* temp, size_t temp_bytes, cudaStream_t stream);

// Stage 2 for the sampling rows params[rows[j]]: applies top-k / top-p /
// min-p to the row's sorted probabilities (at row * vocab) and draws.
absl::Status SampleFromSorted(const float* sorted_keys, const int* sorted_ids,
                              const SampleRowParams* params, const int* rows, int num_rows,
                              int vocab, int* tokens, cudaStream_t stream);

// logprob[row] = logits[row][tokens[row]] - lse[row].
absl::Status GatherLogprobs(const float* logits, const float* lse, const int* tokens, int num_rows,
                            int vocab, float* logprobs, cudaStream_t stream);

// For each listed row: keys = the raw logits, values = ids (at row * vocab),
// ready for a descending sort that gives top logprobs.
absl::Status PrepareRawSort(const float* logits, const int* rows, int num_rows, int vocab,
                            float* keys, int* values, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_SAMPLING_H_
