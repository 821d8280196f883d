// Synthetic workloads: random prompts and prefix repetition.
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "bench/serve/dataset.h"

namespace tpserve::bench {
namespace {

// Integer-uniform lengths around `mean`, as vLLM's get_sampling_params:
// [floor(mean * (1 - r)), ceil(mean * (1 + r))], at least `min`.
int DrawLength(int mean, double ratio, int min, std::mt19937_64* rng) {
  const int lo = std::max(min, static_cast<int>(std::floor(mean * (1.0 - ratio))));
  const int hi = std::max(lo, static_cast<int>(std::ceil(mean * (1.0 + ratio))));
  return std::uniform_int_distribution<int>(lo, hi)(*rng);
}

std::vector<int32_t> RandomIds(const std::vector<int32_t>& allowed, int n, std::mt19937_64* rng) {
  std::uniform_int_distribution<size_t> pick(0, allowed.size() - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = allowed[pick(*rng)];
  return ids;
}

// A request from prompt ids: sent as ids, or as text of about that length.
SampleRequest MakeRequest(const text::Tokenizer& tok, std::vector<int32_t> ids, int output_len,
                          bool as_text, const std::vector<int32_t>& allowed, std::mt19937_64* rng) {
  SampleRequest r;
  r.expected_output_len = output_len;
  if (as_text) {
    r.prompt = TextOfLength(tok, std::move(ids), allowed, rng, &r.prompt_len);
  } else {
    r.prompt_len = static_cast<int>(ids.size());
    r.prompt_ids = std::move(ids);
  }
  return r;
}

}  // namespace

std::vector<int32_t> AllowedTokens(const text::Tokenizer& tokenizer) {
  std::unordered_set<int32_t> added;
  for (const text::AddedToken& t : tokenizer.added_tokens()) added.insert(t.id);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (!added.count(id) && !tokenizer.TokenBytes(id).empty()) ids.push_back(id);
  }
  return ids;
}

std::string TextOfLength(const text::Tokenizer& tokenizer, std::vector<int32_t> ids,
                         const std::vector<int32_t>& allowed, std::mt19937_64* rng, int* len) {
  const size_t target = ids.size();
  std::string text = tokenizer.Decode(ids);
  std::vector<int32_t> again = tokenizer.Encode(text, /*parse_special_tokens=*/false);
  // Decoding then encoding can merge or split tokens; a few rounds of cutting
  // or topping up bring the count to the target in practice.
  for (int round = 0; round < 10 && again.size() != target; ++round) {
    if (again.size() > target) {
      again.resize(target);
    } else {
      std::vector<int32_t> more = RandomIds(allowed, static_cast<int>(target - again.size()), rng);
      again.insert(again.end(), more.begin(), more.end());
    }
    text = tokenizer.Decode(again);
    again = tokenizer.Encode(text, false);
  }
  *len = static_cast<int>(again.size());
  return text;
}

absl::StatusOr<Dataset> SampleRandom(const text::Tokenizer& tok, const BenchConfig& c,
                                     bool as_text) {
  const std::vector<int32_t> allowed = AllowedTokens(tok);
  if (allowed.empty()) return absl::InvalidArgumentError("the tokenizer has no regular tokens");
  std::mt19937_64 rng(c.seed);
  const std::vector<int32_t> prefix = RandomIds(allowed, c.random_prefix_len, &rng);
  Dataset d;
  d.requests.reserve(c.num_prompts);
  for (int i = 0; i < c.num_prompts; ++i) {
    const int in = DrawLength(c.random_input_len, c.random_range_ratio, 1, &rng);
    const int out = DrawLength(c.random_output_len, c.random_range_ratio, 1, &rng);
    // As vLLM: a run of consecutive allowed ids from a random offset, so
    // prompts differ from their first token (no accidental prefix sharing).
    const size_t offset = std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng);
    std::vector<int32_t> ids = prefix;
    ids.reserve(prefix.size() + in);
    for (int k = 0; k < in; ++k) ids.push_back(allowed[(offset + i + k) % allowed.size()]);
    d.requests.push_back(MakeRequest(tok, std::move(ids), out, as_text, allowed, &rng));
  }
  return d;
}

absl::StatusOr<Dataset> SamplePrefixRepetition(const text::Tokenizer& tok, const BenchConfig& c,
                                               bool as_text) {
  const std::vector<int32_t> allowed = AllowedTokens(tok);
  if (allowed.empty()) return absl::InvalidArgumentError("the tokenizer has no regular tokens");
  const int per_prefix = c.num_prompts / c.prefix_repetition_num_prefixes;
  if (per_prefix == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--num-prompts (", c.num_prompts, ") must be at least --prefix-repetition-num-prefixes (",
        c.prefix_repetition_num_prefixes, ")"));
  }
  std::mt19937_64 rng(c.seed);
  Dataset d;
  for (int p = 0; p < c.prefix_repetition_num_prefixes; ++p) {
    const std::vector<int32_t> prefix = RandomIds(allowed, c.prefix_repetition_prefix_len, &rng);
    // Chat prompts share the prefix as text: decode it once per group.
    int prefix_len = static_cast<int>(prefix.size());
    const std::string prefix_text =
        as_text ? TextOfLength(tok, prefix, allowed, &rng, &prefix_len) : "";
    for (int i = 0; i < per_prefix; ++i) {
      std::vector<int32_t> suffix = RandomIds(allowed, c.prefix_repetition_suffix_len, &rng);
      if (as_text) {
        SampleRequest r = MakeRequest(tok, std::move(suffix), c.prefix_repetition_output_len, true,
                                      allowed, &rng);
        r.prompt = prefix_text + r.prompt;
        r.prompt_len += prefix_len;
        d.requests.push_back(std::move(r));
      } else {
        std::vector<int32_t> ids = prefix;
        ids.insert(ids.end(), suffix.begin(), suffix.end());
        d.requests.push_back(
            MakeRequest(tok, std::move(ids), c.prefix_repetition_output_len, false, allowed, &rng));
      }
    }
  }
  std::shuffle(d.requests.begin(), d.requests.end(), rng);
  if (static_cast<int>(d.requests.size()) != c.num_prompts) {
    d.note = absl::StrCat(d.requests.size(), " requests (", c.prefix_repetition_num_prefixes,
                          " prefixes x ", per_prefix, "), not ", c.num_prompts,
                          ": --num-prompts is rounded down to a multiple of the prefixes");
  }
  return d;
}

absl::StatusOr<Dataset> LoadDataset(const text::Tokenizer& tokenizer, const BenchConfig& config,
                                    bool as_text) {
  if (config.dataset_name == "sharegpt") return SampleShareGpt(tokenizer, config);
  if (config.dataset_name == "prefix-repetition") {
    return SamplePrefixRepetition(tokenizer, config, as_text);
  }
  return SampleRandom(tokenizer, config, as_text);
}

}  // namespace tpserve::bench
