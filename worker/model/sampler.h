// Turns one sequence's float32 logits into its next token, on the host, for
// any backend (the CUDA backend copies logits back and calls this too, so the
// two agree token for token).
//
// Order: the grammar mask, allowed_token_ids, bad_words and logit_bias -> mask EOS/stop
// ids below min_tokens (unless nothing else would be left) -> repetition,
// frequency and
// presence penalties -> greedy argmax (ties: lower id) when temperature is 0;
// otherwise softmax(logits / T) -> top-k -> top-p over the top-k mass -> min-p
// (p >= min_p * p_max) -> draw by the rule in sampling_rng.h with
// u = SampleUniform(seed, output index). This is the CUDA sampler's order
// (worker/cuda/sampling.h) so both backends pick the same tokens; vLLM
// applies min-p before top-k/top-p, which differs only when min-p and top-p
// are both set. Logprobs always come from the raw (unprocessed) log-softmax,
// as vLLM reports by default.
#ifndef TPSERVE_WORKER_MODEL_SAMPLER_H_
#define TPSERVE_WORKER_MODEL_SAMPLER_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend/backend.h"

namespace tpserve::worker {

// Everything sampling needs about one sequence.
struct SamplingInput {
  // Raw logits over the full vocabulary.
  std::span<const float> logits;
  const SamplingParams* params = nullptr;
  // Every known token: prompt, then outputs so far.
  std::span<const int32_t> token_ids;
  int num_prompt_tokens = 0;
  // The model's EOS ids (masked below min_tokens unless ignore_eos).
  std::span<const int> eos_token_ids;
  // Structured output's mask (SeqStep::allowed_mask); empty: no grammar.
  std::span<const uint32_t> allowed_mask;
};

// Samples the next token. `seq_id` of the result is left 0 for the caller.
// INVALID_ARGUMENT for empty logits or out-of-range parameters.
absl::StatusOr<SampleResult> SampleNext(const SamplingInput& input);

// Applies the grammar mask (`allowed_mask`, may be empty), allowed_token_ids
// (-inf elsewhere), bad_words (-inf for the ids banned after `output`, the
// generated tokens, unless nothing else would be left: bad_words.h) and
// logit_bias in place.
void ApplyRestrictions(std::span<float> logits, const SamplingParams& params,
                       std::span<const uint32_t> allowed_mask, std::span<const int32_t> output);

// Applies repetition (prompt + output), frequency and presence (output only)
// penalties in place.
void ApplyPenalties(std::span<float> logits, const SamplingParams& params,
                    std::span<const int32_t> prompt, std::span<const int32_t> output);

// The `n` largest entries of the log-softmax of `logits`, most likely first
// (ties: lower id first).
std::vector<std::pair<int32_t, float>> TopLogprobs(std::span<const float> logits, int n);

// log-softmax of `logits` at `token`.
float Logprob(std::span<const float> logits, int32_t token);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_SAMPLER_H_
