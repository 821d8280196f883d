#include "structured/grammar_cache.h"

#include <utility>

#include "common/status_macros.h"
#include "structured/spec.h"

namespace tpserve::structured {

GrammarCache::GrammarCache(std::shared_ptr<const TokenVocabulary> vocab, JsonGrammarOptions options,
                           size_t capacity, int precompute_threads)
    : vocab_(std::move(vocab)), options_(options), capacity_(std::max<size_t>(capacity, 1)) {
  if (precompute_threads > 0) precompute_ = std::make_unique<MaskPrecomputer>(precompute_threads);
}

absl::StatusOr<std::unique_ptr<GrammarCache>> GrammarCache::ForModel(const std::string& model_dir,
                                                                     std::vector<int32_t> eos_ids,
                                                                     int mask_size, int precompute_threads) {
  TP_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> tokenizer, text::Tokenizer::Load(model_dir));
  TP_ASSIGN_OR_RETURN(auto vocab, TokenVocabulary::FromTokenizer(*tokenizer, std::move(eos_ids), mask_size));
  return std::make_unique<GrammarCache>(std::move(vocab), JsonGrammarOptions{}, 64, precompute_threads);
}

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCache::Get(const std::string& spec) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(spec);
  if (it != entries_.end()) {
    it->second.last_use = ++clock_;
    return it->second.grammar;
  }
  TP_ASSIGN_OR_RETURN(Grammar grammar, GrammarFromSpec(spec, options_));
  auto compiled = std::make_shared<const CompiledGrammar>(std::move(grammar), vocab_);
  if (entries_.size() >= capacity_) {
    auto oldest = entries_.begin();
    for (auto e = entries_.begin(); e != entries_.end(); ++e) {
      if (e->second.last_use < oldest->second.last_use) oldest = e;
    }
    entries_.erase(oldest);
  }
  entries_[spec] = Entry{compiled, ++clock_};
  if (precompute_ != nullptr) precompute_->Submit(compiled);
  return compiled;
}

absl::StatusOr<std::unique_ptr<GrammarMatcher>> GrammarCache::NewMatcher(const std::string& spec) {
  TP_ASSIGN_OR_RETURN(auto compiled, Get(spec));
  return std::make_unique<GrammarMatcher>(std::move(compiled));
}

}  // namespace tpserve::structured
