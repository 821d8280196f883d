// vLLM's bad_words on the worker: which token ids a sequence may not sample
// next, given its generated tokens. Shared by the CPU sampler
// (worker/model/sampler.cc) and the CUDA sampler (worker/cuda/sampler.cc), so
// both ban exactly the same ids.
//
// Semantics (vLLM's SamplingParams and v1 sampler): every word is a token id
// sequence (the gateway tokenizes each word as written and with a leading
// space). A word of one token bans that token at every step; a word of n
// tokens bans its last token when the last n-1 generated tokens are its first
// n-1. Only generated tokens count, never the prompt.
#ifndef TPSERVE_WORKER_BACKEND_BAD_WORDS_H_
#define TPSERVE_WORKER_BACKEND_BAD_WORDS_H_

#include <cstdint>
#include <span>
#include <vector>

namespace tpserve::worker {

// The bounds on bad_words, and the check that every id is in the vocabulary,
// are common/sampling_rules.h's (CheckSamplingParams): the router admits and
// the worker accepts by the same rule, and these functions trust it.

// Sets `banned` to the ids that `bad_words` forbid as the token after
// `output` (the generated tokens, oldest first), sorted, without repeats.
void BannedTokenIds(std::span<const std::vector<int32_t>> bad_words, std::span<const int32_t> output,
                    std::vector<int32_t>* banned);

// Clears the bits of `banned` in a token bitmask (bit id%32 of word id/32 set
// = id allowed), unless that would leave no bit set: then the mask is left as
// it was and false is returned. A grammar (or allowed_token_ids) whose only
// continuations are banned keeps them, as min_tokens yields when a grammar
// allows only EOS, so the output still follows the grammar. Only ids below
// `vocab` count (bits past it may be set and are never cleared).
bool BanInMask(std::span<uint32_t> words, int vocab, std::span<const int32_t> banned);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_BACKEND_BAD_WORDS_H_
