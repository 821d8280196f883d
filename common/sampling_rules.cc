#include "common/sampling_rules.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

bool InRange(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// `noun` names the ids in the message ("stop token id 7 is outside ...").
absl::Status CheckIds(const google::protobuf::RepeatedField<int32_t>& ids, const char* noun,
                      int vocab_size) {
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      return Invalid(
          absl::StrCat(noun, " ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBadWords(const v1::SamplingParams& p, int vocab_size) {
  if (p.bad_words_size() > kMaxBadWordSequences) {
    return Invalid(absl::StrCat("bad_words: ", p.bad_words_size(), " sequences exceed the limit of ",
                                kMaxBadWordSequences));
  }
  int total = 0;
  for (int i = 0; i < p.bad_words_size(); ++i) {
    const auto& ids = p.bad_words(i).ids();
    if (ids.empty() || ids.size() > kMaxBadWordLength) {
      return Invalid(absl::StrCat("bad_words: sequence ", i, " has ", ids.size(), " tokens (1 to ",
                                  kMaxBadWordLength, " allowed)"));
    }
    if (absl::Status s = CheckIds(ids, "bad_words token id", vocab_size); !s.ok()) return s;
    total += ids.size();
  }
  if (total > kMaxBadWordsTokens) {
    return Invalid(absl::StrCat("bad_words: ", total, " tokens in all exceed the limit of ",
                                kMaxBadWordsTokens));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSamplingParams(const v1::SamplingParams& p, int vocab_size) {
  if (!InRange(p.temperature(), 0.0, kMaxTemperature)) {
    return Invalid(absl::StrCat("temperature must be in [0, ", kMaxTemperature, "], got ",
                                p.temperature()));
  }
  if (!InRange(p.top_p(), 0.0, 1.0)) {
    return Invalid(absl::StrCat("top_p must be in [0, 1], got ", p.top_p()));
  }
  if (p.top_k() < -1) return Invalid(absl::StrCat("top_k must be >= -1, got ", p.top_k()));
  if (!InRange(p.min_p(), 0.0, 1.0)) {
    return Invalid(absl::StrCat("min_p must be in [0, 1], got ", p.min_p()));
  }
  if (p.min_tokens() < 0) {
    return Invalid(absl::StrCat("min_tokens must be >= 0, got ", p.min_tokens()));
  }
  if (!InRange(p.presence_penalty(), kMinPenalty, kMaxPenalty) ||
      !InRange(p.frequency_penalty(), kMinPenalty, kMaxPenalty)) {
    return Invalid(absl::StrCat("presence/frequency penalties must be in [", kMinPenalty, ", ",
                                kMaxPenalty, "], got ", p.presence_penalty(), " and ",
                                p.frequency_penalty()));
  }
  // 0 is the proto's "unset" (neutral 1.0); other values must be positive.
  if (!InRange(p.repetition_penalty(), 0.0, kMaxRepetitionPenalty)) {
    return Invalid(
        absl::StrCat("repetition_penalty must be > 0, got ", p.repetition_penalty()));
  }
  if (p.top_logprobs() < 0 || p.top_logprobs() > kMaxTopLogprobs) {
    return Invalid(absl::StrCat("top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ",
                                p.top_logprobs()));
  }
  if (absl::Status s = CheckIds(p.stop_token_ids(), "stop token id", vocab_size); !s.ok()) {
    return s;
  }
  for (const auto& [id, bias] : p.logit_bias()) {
    if (id < 0 || id >= vocab_size || !InRange(bias, -kMaxLogitBiasValue, kMaxLogitBiasValue)) {
      return Invalid(absl::StrCat("logit_bias {", id, ": ", bias, "} needs an id in [0, ",
                                  vocab_size, ") and a bias in [", -kMaxLogitBiasValue, ", ",
                                  kMaxLogitBiasValue, "]"));
    }
  }
  if (absl::Status s = CheckIds(p.allowed_token_ids(), "allowed token id", vocab_size); !s.ok()) {
    return s;
  }
  return CheckBadWords(p, vocab_size);
}

}  // namespace tpserve
