// The byte strings of a byte-level BPE vocabulary, sorted so that walks over
// the vocabulary share the work of common prefixes (a trie without pointers).
#ifndef TPSERVE_STRUCTURED_VOCABULARY_H_
#define TPSERVE_STRUCTURED_VOCABULARY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/text/tokenizer.h"

namespace tpserve::structured {

class TokenVocabulary {
 public:
  // `token_bytes[id]` is what token `id` decodes to. Tokens in `special_ids`
  // or with no bytes never match a grammar; `eos_ids` are allowed exactly when
  // the grammar is complete. `mask_size` (the model's vocabulary, which may be
  // padded past the tokenizer's) is at least token_bytes.size().
  TokenVocabulary(std::vector<std::string> token_bytes, std::vector<int32_t> eos_ids,
                  const std::vector<int32_t>& special_ids, int mask_size = 0);

  // From a loaded tokenizer: its special tokens are excluded.
  static absl::StatusOr<std::shared_ptr<const TokenVocabulary>> FromTokenizer(
      const text::Tokenizer& tokenizer, std::vector<int32_t> eos_ids, int mask_size = 0);

  // Number of token ids a mask covers.
  int size() const { return size_; }
  // 32-bit words of a mask (bit id%32 of word id/32 set = allowed).
  int mask_words() const { return (size_ + 31) / 32; }
  std::string_view bytes(int32_t id) const {
    return id < static_cast<int32_t>(bytes_.size()) ? std::string_view(bytes_[id]) : "";
  }
  // Grammar-matchable token ids, in byte order.
  const std::vector<int32_t>& sorted() const { return sorted_; }
  // lcp()[i]: bytes shared by sorted()[i-1] and sorted()[i] (0 for i = 0).
  const std::vector<int32_t>& lcp() const { return lcp_; }
  // Positions in sorted() of the tokens starting with byte b:
  // [first_byte_begin(b), first_byte_begin(b + 1)).
  int32_t first_byte_begin(int b) const { return first_byte_begin_[b]; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool is_eos(int32_t id) const;
  // True for tokens a grammar can match (non-special, non-empty).
  bool matchable(int32_t id) const {
    return id >= 0 && id < static_cast<int32_t>(matchable_.size()) && matchable_[id];
  }
  int max_token_bytes() const { return max_token_bytes_; }

 private:
  int size_ = 0;
  std::vector<std::string> bytes_;
  std::vector<int32_t> sorted_;
  std::vector<int32_t> lcp_;
  std::array<int32_t, 257> first_byte_begin_{};
  std::vector<int32_t> eos_ids_;
  std::vector<char> matchable_;
  int max_token_bytes_ = 0;
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_VOCABULARY_H_
