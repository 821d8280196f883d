#include "structured/testing.h"

#include "structured/stepper.h"

namespace tpserve::structured::testing {

int MatchState(const Grammar& grammar, std::string_view text) {
  StackArena arena;
  Stepper stepper(grammar, &arena);
  ThreadSet cur, next;
  stepper.Close({{grammar.rule_start(0), StackArena::kBottom}}, &cur);
  for (char c : text) {
    stepper.Step(cur, static_cast<uint8_t>(c), &next);
    if (next.dead()) return -1;
    std::swap(cur, next);
  }
  return cur.bottom ? 1 : 0;
}

PrefixChecker::PrefixChecker(const Grammar& grammar, std::string_view prefix)
    : stepper_(grammar, &arena_) {
  stepper_.Close({{grammar.rule_start(0), StackArena::kBottom}}, &state_);
  for (char c : prefix) {
    stepper_.Step(state_, static_cast<uint8_t>(c), &a_);
    std::swap(state_, a_);
    if (state_.dead()) {
      viable_ = false;
      return;
    }
  }
}

bool PrefixChecker::Viable(std::string_view more) {
  if (!viable_) return false;
  const ThreadSet* cur = &state_;
  for (size_t i = 0; i < more.size(); ++i) {
    ThreadSet* next = (i & 1) ? &b_ : &a_;
    stepper_.Step(*cur, static_cast<uint8_t>(more[i]), next);
    if (next->dead()) return false;
    cur = next;
  }
  return true;
}

std::vector<uint32_t> BruteForceMask(const std::shared_ptr<const CompiledGrammar>& compiled,
                                     std::string_view prefix) {
  const TokenVocabulary& vocab = compiled->vocab();
  std::vector<uint32_t> words(vocab.mask_words(), 0);
  PrefixChecker checker(compiled->grammar(), prefix);
  for (int32_t id = 0; id < vocab.size(); ++id) {
    bool ok;
    if (vocab.is_eos(id)) {
      ok = checker.complete();
    } else if (!vocab.matchable(id)) {
      ok = false;
    } else {
      ok = checker.Viable(vocab.bytes(id));
    }
    if (ok) words[id >> 5] |= 1u << (id & 31);
  }
  return words;
}

std::shared_ptr<const TokenVocabulary> SmallVocab(const std::vector<std::string>& tokens) {
  std::vector<std::string> bytes = tokens;
  bytes.push_back("<eos>");
  const int32_t eos = static_cast<int32_t>(bytes.size() - 1);
  return std::make_shared<const TokenVocabulary>(std::move(bytes), std::vector<int32_t>{eos},
                                                 std::vector<int32_t>{});
}

}  // namespace tpserve::structured::testing
