// Per-sequence grammar state: accepts sampled tokens and builds the mask of
// tokens allowed next. Compiled grammars are shared; matchers are not
// thread-safe (one per sequence, used by one thread at a time).
#ifndef TPSERVE_STRUCTURED_MATCHER_H_
#define TPSERVE_STRUCTURED_MATCHER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "structured/grammar.h"
#include "structured/mask_cache.h"
#include "structured/stepper.h"
#include "structured/token_walker.h"
#include "structured/vocabulary.h"

namespace tpserve::structured {

// A grammar bound to a vocabulary, with its token-mask cache.
class CompiledGrammar {
 public:
  CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocab)
      : grammar_(std::move(grammar)), vocab_(std::move(vocab)), cache_(grammar_, *vocab_) {}
  CompiledGrammar(const CompiledGrammar&) = delete;
  CompiledGrammar& operator=(const CompiledGrammar&) = delete;

  const Grammar& grammar() const { return grammar_; }
  const TokenVocabulary& vocab() const { return *vocab_; }
  MaskCache& cache() const { return cache_; }

 private:
  Grammar grammar_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  mutable MaskCache cache_;  // filled lazily; internally synchronized
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> compiled);

  // Advances by one token; false (state unchanged) if the grammar forbids it.
  // An EOS id is accepted only when the grammar is complete, and ends it.
  bool AcceptToken(int32_t id);
  // Advances by raw bytes; false (state unchanged) if they are not a viable
  // continuation.
  bool AcceptBytes(std::string_view bytes);
  // The input so far is a complete document: EOS is allowed.
  bool IsComplete() const { return state_.bottom; }
  // EOS was accepted; nothing follows.
  bool IsTerminated() const { return terminated_; }
  // Some byte may still follow.
  bool CanContinue() const { return !terminated_ && !state_.threads.empty(); }

  // Writes the allowed next tokens into `words` (vocab().mask_words() words).
  // After EOS only EOS is allowed, so a step already scheduled past the end
  // stays well defined.
  void FillNextTokenBitmask(std::span<uint32_t> words);

  const CompiledGrammar& compiled() const { return *compiled_; }

 private:
  std::shared_ptr<const CompiledGrammar> compiled_;
  StackArena arena_;
  Stepper stepper_;
  TokenWalker walker_;
  ThreadSet state_;
  ThreadSet scratch_[2];
  std::vector<int32_t> pending_;
  bool terminated_ = false;
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_MATCHER_H_
