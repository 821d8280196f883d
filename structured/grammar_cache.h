// Compiled grammars by spec, bound to one vocabulary: a worker compiles each
// distinct spec once and every sequence using it shares the token-mask cache.
#ifndef TPSERVE_STRUCTURED_GRAMMAR_CACHE_H_
#define TPSERVE_STRUCTURED_GRAMMAR_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "structured/json_schema.h"
#include "structured/mask_precompute.h"
#include "structured/matcher.h"
#include "structured/vocabulary.h"

namespace tpserve::structured {

class GrammarCache {
 public:
  // Keeps at most `capacity` grammars; the least recently used goes first
  // (matchers still holding it keep it alive). With `precompute_threads` >
  // 0, each newly compiled grammar's mask cache is filled by that many
  // background threads (MaskPrecomputer) while its sequences start.
  GrammarCache(std::shared_ptr<const TokenVocabulary> vocab, JsonGrammarOptions options = {},
               size_t capacity = 64, int precompute_threads = 0);

  // A cache for the model in `model_dir` (its tokenizer.json), EOS ids
  // `eos_ids`, masks over `mask_size` ids (the lm_head's vocabulary).
  static absl::StatusOr<std::unique_ptr<GrammarCache>> ForModel(const std::string& model_dir,
                                                                std::vector<int32_t> eos_ids,
                                                                int mask_size, int precompute_threads = 0);

  // The compiled grammar of `spec` (see spec.h); errors as GrammarFromSpec.
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Get(const std::string& spec);
  // A new matcher for `spec`.
  absl::StatusOr<std::unique_ptr<GrammarMatcher>> NewMatcher(const std::string& spec);

  const TokenVocabulary& vocab() const { return *vocab_; }

 private:
  struct Entry {
    std::shared_ptr<const CompiledGrammar> grammar;
    uint64_t last_use = 0;
  };
  const std::shared_ptr<const TokenVocabulary> vocab_;
  const JsonGrammarOptions options_;
  const size_t capacity_;
  absl::Mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  uint64_t clock_ = 0;                    // guarded by mu_
  // Declared last: destroyed first, so no job outlives the cache.
  std::unique_ptr<MaskPrecomputer> precompute_;
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_GRAMMAR_CACHE_H_
