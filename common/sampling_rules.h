// The accepted ranges of the sampling parameters, written once: the gateway
// checks a client's JSON against the same bounds, and the router and the
// worker check the v1::SamplingParams arriving over their RPCs with
// CheckSamplingParams, so a request the router admits is one every worker
// accepts (a step the worker refused would fail the whole batch).
#ifndef TPSERVE_COMMON_SAMPLING_RULES_H_
#define TPSERVE_COMMON_SAMPLING_RULES_H_

#include "absl/status/status.h"
#include "proto/common.pb.h"

namespace tpserve {

// Upper bounds that only keep the arithmetic finite (no client needs more).
inline constexpr double kMaxTemperature = 1e6;
inline constexpr double kMaxRepetitionPenalty = 1e6;
// presence_penalty and frequency_penalty, as in OpenAI's API.
inline constexpr double kMinPenalty = -2.0;
inline constexpr double kMaxPenalty = 2.0;
// OpenAI's limit on top_logprobs.
inline constexpr int kMaxTopLogprobs = 20;
// A logit_bias value is added to the logit, in [-kMaxLogitBiasValue, +].
inline constexpr double kMaxLogitBiasValue = 100.0;
// bad_words, as token id sequences (vLLM's bounds: 128 and 1024). They keep
// the samplers' per-step check (worker/backend/bad_words.h) to a few thousand
// comparisons per sequence.
inline constexpr int kMaxBadWordSequences = 128;
inline constexpr int kMaxBadWordLength = 32;  // tokens in one sequence
inline constexpr int kMaxBadWordsTokens = 1024;  // tokens in all sequences

// Checks every sampling field with a bound that does not depend on the
// request's length: temperature, top_p, top_k, min_p, min_tokens >= 0,
// penalties, top_logprobs, that stop_token_ids, logit_bias ids,
// allowed_token_ids and bad_words ids lie in [0, vocab_size), and that
// bad_words keep within the bounds above with no empty sequence. NaN and
// infinity are refused.
// INVALID_ARGUMENT names the first field out of range.
absl::Status CheckSamplingParams(const v1::SamplingParams& p, int vocab_size);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SAMPLING_RULES_H_
