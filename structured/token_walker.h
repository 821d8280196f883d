// Walks many tokens from one parse, sharing the steps of common prefixes
// (tokens come in byte order, so a token restarts where it leaves its
// predecessor's path) and skipping every token under a dead prefix at once.
#ifndef TPSERVE_STRUCTURED_TOKEN_WALKER_H_
#define TPSERVE_STRUCTURED_TOKEN_WALKER_H_

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "structured/stepper.h"
#include "structured/vocabulary.h"

namespace tpserve::structured {

enum class TokenClass : uint8_t {
  kReject,     // no parse accepts every byte
  kAccept,     // a parse accepts every byte without leaving the start's rule
  kUncertain,  // only parses that end the start's outermost rule mid-token
};

class TokenWalker {
 public:
  TokenWalker(const Grammar& grammar, const TokenVocabulary& vocab, StackArena* arena)
      : vocab_(vocab), stepper_(grammar, arena), levels_(vocab.max_token_bytes() + 1),
        ended_(vocab.max_token_bytes() + 1, 0) {}

  // Classifies the tokens at `positions` (ascending indices into
  // vocab.sorted()) from the single parse `start`; calls on_token(position,
  // class). With the root rule's parse (its full stack), kUncertain means the
  // token needs bytes after the grammar ended: a rejection.
  template <typename F>
  void Walk(Thread start, const int32_t* positions, size_t n, F&& on_token) {
    levels_[0].threads.assign(1, start);
    levels_[0].bottom = false;
    ended_[0] = 0;
    int valid = 0;  // levels_[0..valid] describe the previous token's prefix
    std::string_view prev;
    for (size_t k = 0; k < n; ++k) {
      const int32_t pos = positions[k];
      const std::string_view bytes = vocab_.bytes(vocab_.sorted()[pos]);
      int lcp;
      if (k > 0 && positions[k - 1] == pos - 1) {
        lcp = vocab_.lcp()[pos];
      } else {
        lcp = 0;
        while (lcp < static_cast<int>(std::min(prev.size(), bytes.size())) &&
               prev[lcp] == bytes[lcp]) {
          ++lcp;
        }
      }
      prev = bytes;
      const int len = static_cast<int>(bytes.size());
      int d = std::min(lcp, valid);
      while (d < len && !levels_[d].threads.empty()) {
        stepper_.Step(levels_[d], static_cast<uint8_t>(bytes[d]), &levels_[d + 1]);
        ++d;
        ended_[d] = ended_[d - 1] | (levels_[d].bottom ? 1 : 0);
      }
      valid = d;
      TokenClass c;
      if (d == len && !levels_[len].dead()) {
        c = TokenClass::kAccept;
      } else if (ended_[std::min(d, len - 1)]) {
        c = TokenClass::kUncertain;
      } else {
        c = TokenClass::kReject;
      }
      on_token(pos, c);
    }
  }

 private:
  const TokenVocabulary& vocab_;
  Stepper stepper_;
  std::vector<ThreadSet> levels_;  // levels_[d]: parses after d bytes
  std::vector<char> ended_;        // ended_[d]: some level in 1..d had bottom set
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_TOKEN_WALKER_H_
