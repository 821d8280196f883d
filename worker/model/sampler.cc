#include "worker/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/backend/bad_words.h"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// log(sum(exp(logits))), stable.
double LogSumExp(std::span<const float> logits) {
  float max = kNegInf;
  for (float v : logits) max = std::max(max, v);
  if (max == kNegInf) return kNegInf;
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return max + std::log(sum);
}

// Index of the largest value, lowest id on ties; NaN never wins (unless
// everything is NaN, then 0).
int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  float best_value = -std::numeric_limits<float>::infinity();
  bool found = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > best_value || (!found && !std::isnan(logits[i]))) {
      best = static_cast<int32_t>(i);
      best_value = logits[i];
      found = true;
    }
  }
  return best;
}

absl::Status Validate(const SamplingInput& in) {
  if (in.params == nullptr) return absl::InvalidArgumentError("sampling parameters missing");
  if (in.logits.empty()) return absl::InvalidArgumentError("empty logits");
  const SamplingParams& p = *in.params;
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", p.temperature));
  }
  if (!(p.top_p >= 0 && p.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in [0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0 && p.min_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  }
  if (p.top_k < -1) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= -1, got ", p.top_k));
  if (!(p.repetition_penalty > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be > 0, got ", p.repetition_penalty));
  }
  if (p.top_logprobs < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_logprobs must be >= 0, got ", p.top_logprobs));
  }
  if (in.num_prompt_tokens < 0 || in.num_prompt_tokens > static_cast<int>(in.token_ids.size())) {
    return absl::InvalidArgumentError("num_prompt_tokens out of range");
  }
  return absl::OkStatus();
}

// The result for `token`, with logprobs from the raw logits when asked.
SampleResult Result(const SamplingInput& in, int32_t token) {
  SampleResult r;
  r.token_id = token;
  if (in.params->logprobs || in.params->top_logprobs > 0) {
    r.has_logprobs = true;
    r.logprob = Logprob(in.logits, token);
    r.top_logprobs = TopLogprobs(in.logits, in.params->top_logprobs);
  }
  return r;
}

}  // namespace

void ApplyRestrictions(std::span<float> logits, const SamplingParams& p,
                       std::span<const uint32_t> allowed_mask, std::span<const int32_t> output) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (!allowed_mask.empty()) {
    const int64_t bits = static_cast<int64_t>(allowed_mask.size()) * 32;
    for (int64_t t = 0; t < vocab; ++t) {
      if (t >= bits || !((allowed_mask[t >> 5] >> (t & 31)) & 1u)) logits[t] = kNegInf;
    }
  }
  if (!p.allowed_token_ids.empty()) {
    thread_local std::vector<char> allowed;
    allowed.assign(logits.size(), 0);
    for (int32_t t : p.allowed_token_ids) {
      if (t >= 0 && t < vocab) allowed[t] = 1;
    }
    for (int64_t t = 0; t < vocab; ++t) {
      if (!allowed[t]) logits[t] = kNegInf;
    }
  }
  if (!p.bad_words.empty()) {
    thread_local std::vector<int32_t> banned;
    thread_local std::vector<std::pair<int32_t, float>> saved;
    BannedTokenIds(p.bad_words, output, &banned);
    saved.clear();
    for (int32_t t : banned) {
      if (t >= 0 && t < vocab && logits[t] != kNegInf) {
        saved.emplace_back(t, logits[t]);
        logits[t] = kNegInf;
      }
    }
    // BanInMask's rule: banning every token still allowed bans nothing.
    if (!saved.empty() && std::all_of(logits.begin(), logits.end(), [](float v) { return v == kNegInf; })) {
      for (auto [t, v] : saved) logits[t] = v;
    }
  }
  for (const auto& [t, bias] : p.logit_bias) {
    if (t >= 0 && t < vocab) logits[t] += bias;  // -inf stays -inf
  }
}

void ApplyPenalties(std::span<float> logits, const SamplingParams& p,
                    std::span<const int32_t> prompt, std::span<const int32_t> output) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  auto valid = [vocab](int32_t t) { return t >= 0 && t < vocab; };
  if (p.repetition_penalty != 1.0f) {
    std::vector<bool> seen(logits.size(), false);
    for (auto span : {prompt, output}) {
      for (int32_t t : span) {
        if (valid(t)) seen[t] = true;
      }
    }
    for (size_t t = 0; t < logits.size(); ++t) {
      if (!seen[t]) continue;
      logits[t] = logits[t] > 0 ? logits[t] / p.repetition_penalty : logits[t] * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : output) {
      if (valid(t)) ++counts[t];
    }
    for (const auto& [t, n] : counts) {
      logits[t] -= p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
    }
  }
}

std::vector<std::pair<int32_t, float>> TopLogprobs(std::span<const float> logits, int n) {
  n = std::min<int>(n, static_cast<int>(logits.size()));
  if (n <= 0) return {};
  const double lse = LogSumExp(logits);
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<std::pair<int32_t, float>> out;
  for (int i = 0; i < n; ++i) out.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - lse));
  return out;
}

float Logprob(std::span<const float> logits, int32_t token) {
  return static_cast<float>(logits[token] - LogSumExp(logits));
}

absl::StatusOr<SampleResult> SampleNext(const SamplingInput& in) {
  if (auto s = Validate(in); !s.ok()) return s;
  const SamplingParams& p = *in.params;
  const int vocab = static_cast<int>(in.logits.size());
  const auto prompt = in.token_ids.first(in.num_prompt_tokens);
  const auto output = in.token_ids.subspan(in.num_prompt_tokens);

  const bool mask_stops = static_cast<int>(output.size()) < p.min_tokens;
  const bool penalties = p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f ||
                         p.presence_penalty != 0.0f;
  const bool restricted = !in.allowed_mask.empty() || !p.allowed_token_ids.empty() ||
                          !p.bad_words.empty() || !p.logit_bias.empty();
  if (p.temperature == 0.0f && !mask_stops && !penalties && !restricted) {
    return Result(in, Argmax(in.logits));  // plain greedy: no edited copy needed
  }

  // Scratch reused across calls on this thread: a fresh 150k-entry vector
  // per token would fault in new pages every time.
  thread_local std::vector<float> l;
  thread_local std::vector<double> prob;
  thread_local std::vector<int32_t> keep;
  l.assign(in.logits.begin(), in.logits.end());
  for (float& v : l) {
    if (std::isnan(v)) v = kNegInf;  // a NaN must never win a comparison
  }
  if (restricted) ApplyRestrictions(l, p, in.allowed_mask, output);
  if (mask_stops) {
    // A grammar that is complete allows only EOS: min_tokens cannot take it
    // away, or nothing would be left to sample.
    thread_local std::vector<std::pair<int, float>> saved;
    saved.clear();
    auto mask = [&](int id) {
      if (id >= 0 && id < vocab) {
        saved.emplace_back(id, l[id]);
        l[id] = kNegInf;
      }
    };
    for (int id : p.stop_token_ids) mask(id);
    if (!p.ignore_eos) {
      for (int id : in.eos_token_ids) mask(id);
    }
    if (restricted && std::none_of(l.begin(), l.end(), [](float v) { return v != kNegInf; })) {
      for (auto [id, v] : saved) l[id] = v;
    }
  }
  ApplyPenalties(l, p, prompt, output);

  int32_t token = 0;
  if (p.temperature == 0.0f) {
    token = Argmax(l);
  } else {
    // Probabilities after temperature (double: the cumulative draw below
    // must not depend on summation error).
    float max = kNegInf;
    for (float v : l) max = std::max(max, v / p.temperature);
    prob.assign(vocab, 0.0);
    if (max != kNegInf) {
      for (int i = 0; i < vocab; ++i) prob[i] = std::exp(static_cast<double>(l[i] / p.temperature) - max);
    } else {
      prob.assign(vocab, 1.0);  // everything masked: fall back to uniform
    }
    keep.clear();
    for (int i = 0; i < vocab; ++i) {
      if (prob[i] > 0) keep.push_back(i);
    }
    auto by_prob = [&](int32_t a, int32_t b) { return prob[a] != prob[b] ? prob[a] > prob[b] : a < b; };
    if (p.top_k > 0 && p.top_k < static_cast<int>(keep.size())) {
      std::partial_sort(keep.begin(), keep.begin() + p.top_k, keep.end(), by_prob);
      keep.resize(p.top_k);
    } else {
      std::sort(keep.begin(), keep.end(), by_prob);
    }
    if (p.top_p > 0 && p.top_p < 1) {
      double mass = 0;
      for (int32_t id : keep) mass += prob[id];
      double before = 0;
      size_t n = 0;
      while (n < keep.size() && before < p.top_p * mass) before += prob[keep[n++]];
      keep.resize(std::max<size_t>(n, 1));
    }
    if (p.min_p > 0 && !keep.empty()) {
      // keep[0] is the most likely token, so it always survives.
      const double threshold = p.min_p * prob[keep[0]];
      std::erase_if(keep, [&](int32_t id) { return prob[id] < threshold; });
    }
    double total = 0;
    for (int32_t id : keep) total += prob[id];
    const double target = SampleUniform(p.seed, output.size()) * total;
    double cumulative = 0;
    token = keep.back();
    for (int32_t id : keep) {
      cumulative += prob[id];
      if (cumulative > target) {
        token = id;
        break;
      }
    }
  }

  return Result(in, token);
}

}  // namespace tpserve::worker
