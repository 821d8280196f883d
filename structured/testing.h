// Test helpers: whole-string matching and a brute-force token mask, the
// reference the fast paths are checked against.
#ifndef TPSERVE_STRUCTURED_TESTING_H_
#define TPSERVE_STRUCTURED_TESTING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "structured/grammar.h"
#include "structured/matcher.h"
#include "structured/stepper.h"

namespace tpserve::structured::testing {

// 1: `text` is a complete document; 0: a viable prefix only; -1: neither.
int MatchState(const Grammar& grammar, std::string_view text);
inline bool Matches(const Grammar& g, std::string_view text) { return MatchState(g, text) == 1; }
inline bool IsPrefix(const Grammar& g, std::string_view text) { return MatchState(g, text) >= 0; }

// The stepper's own verdict on continuations of a fixed prefix: the
// reference that masks are checked against (no cache, no token walker).
class PrefixChecker {
 public:
  PrefixChecker(const Grammar& grammar, std::string_view prefix);
  // The prefix is viable (some document starts with it).
  bool viable() const { return viable_; }
  bool complete() const { return viable_ && state_.bottom; }
  // prefix + more is viable.
  bool Viable(std::string_view more);

 private:
  StackArena arena_;
  Stepper stepper_;
  ThreadSet state_, a_, b_;
  bool viable_ = true;
};

// The mask after `prefix`, by trying every token.
std::vector<uint32_t> BruteForceMask(const std::shared_ptr<const CompiledGrammar>& compiled,
                                     std::string_view prefix);

// A vocabulary of the given byte strings (ids in order) plus EOS at the end.
std::shared_ptr<const TokenVocabulary> SmallVocab(const std::vector<std::string>& tokens);

}  // namespace tpserve::structured::testing

#endif  // TPSERVE_STRUCTURED_TESTING_H_
