// The workloads of `tpserve bench serve`, sampled as vLLM's benchmark datasets
// are: random token prompts (exact lengths), ShareGPT conversations, and
// groups of prompts sharing long prefixes (prefix caching).
#ifndef TPSERVE_BENCH_SERVE_DATASET_H_
#define TPSERVE_BENCH_SERVE_DATASET_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/serve/config.h"
#include "bench/serve/request.h"
#include "common/text/tokenizer.h"

namespace tpserve::bench {

struct Dataset {
  std::vector<SampleRequest> requests;
  // Something the user should know (e.g. ShareGPT entries were reused); may be "".
  std::string note;
};

// Samples config.num_prompts requests of config.dataset_name. With
// `as_text` false (/v1/completions) synthetic prompts are token ids, so the
// server sees exactly prompt_len tokens; with `as_text` (chat) they are
// decoded to text and prompt_len is that text's token count.
absl::StatusOr<Dataset> LoadDataset(const text::Tokenizer& tokenizer, const BenchConfig& config,
                                    bool as_text);

// The building blocks, exposed for tests.

// Ids a random prompt may use: the regular vocabulary, no added or special
// tokens (as vLLM leaves out the special ids).
std::vector<int32_t> AllowedTokens(const text::Tokenizer& tokenizer);

// Text whose encoding has about `ids.size()` tokens: ids are decoded, and the
// re-encoding is cut or topped up with random allowed ids a few times until
// the lengths match (vLLM's gen_prompt_decode_to_target_len). Returns the
// text; `*len` gets its real token count.
std::string TextOfLength(const text::Tokenizer& tokenizer, std::vector<int32_t> ids,
                         const std::vector<int32_t>& allowed, std::mt19937_64* rng, int* len);

absl::StatusOr<Dataset> SampleRandom(const text::Tokenizer& tokenizer, const BenchConfig& config,
                                     bool as_text);
absl::StatusOr<Dataset> SamplePrefixRepetition(const text::Tokenizer& tokenizer,
                                               const BenchConfig& config, bool as_text);
absl::StatusOr<Dataset> SampleShareGpt(const text::Tokenizer& tokenizer, const BenchConfig& config);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_DATASET_H_
