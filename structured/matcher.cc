#include "structured/matcher.h"

#include <algorithm>
#include <utility>

namespace tpserve::structured {
namespace {

void SetBit(std::span<uint32_t> words, int32_t id) { words[id >> 5] |= 1u << (id & 31); }
bool TestBit(std::span<const uint32_t> words, int32_t id) { return (words[id >> 5] >> (id & 31)) & 1u; }

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> compiled)
    : compiled_(std::move(compiled)),
      stepper_(compiled_->grammar(), &arena_),
      walker_(compiled_->grammar(), compiled_->vocab(), &arena_) {
  stepper_.Close({{compiled_->grammar().rule_start(0), StackArena::kBottom}}, &state_);
}

bool GrammarMatcher::AcceptBytes(std::string_view bytes) {
  if (terminated_) return false;
  if (bytes.empty()) return true;
  ThreadSet* cur = &state_;
  for (size_t i = 0; i < bytes.size(); ++i) {
    ThreadSet* next = &scratch_[i & 1];
    stepper_.Step(*cur, static_cast<uint8_t>(bytes[i]), next);
    if (next->dead()) return false;
    cur = next;
  }
  std::swap(state_, *cur);
  return true;
}

bool GrammarMatcher::AcceptToken(int32_t id) {
  if (terminated_) return false;
  const TokenVocabulary& vocab = compiled_->vocab();
  if (vocab.is_eos(id)) {
    if (!IsComplete()) return false;
    terminated_ = true;
    return true;
  }
  if (!vocab.matchable(id)) return false;
  return AcceptBytes(vocab.bytes(id));
}

void GrammarMatcher::FillNextTokenBitmask(std::span<uint32_t> words) {
  std::fill(words.begin(), words.end(), 0u);
  const TokenVocabulary& vocab = compiled_->vocab();
  if (terminated_ || IsComplete()) {
    for (int32_t id : vocab.eos_ids()) SetBit(words, id);
  }
  if (terminated_) return;
  MaskCache& cache = compiled_->cache();
  for (const Thread& t : state_.threads) {
    const NodeMask& m = cache.Get(t.node);
    if (!m.accept_bits.empty()) {
      for (size_t i = 0; i < words.size(); ++i) words[i] |= m.accept_bits[i];
    } else {
      for (int32_t id : m.accept_ids) SetBit(words, id);
    }
  }
  // Uncertain tokens leave the node's rule mid-token: only this thread's
  // stack says whether its callers accept the rest.
  for (const Thread& t : state_.threads) {
    const NodeMask& m = cache.Get(t.node);
    pending_.clear();
    for (int32_t pos : m.uncertain) {
      if (!TestBit(words, vocab.sorted()[pos])) pending_.push_back(pos);
    }
    if (pending_.empty()) continue;
    walker_.Walk(t, pending_.data(), pending_.size(), [&](int32_t pos, TokenClass c) {
      if (c == TokenClass::kAccept) SetBit(words, vocab.sorted()[pos]);
    });
  }
}

}  // namespace tpserve::structured
