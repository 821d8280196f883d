// Byte-level BPE tokenizer for Qwen2/2.5/3 models, loaded from HF
// tokenizer.json and bit-exact with HF `tokenizers` on its encode/decode.
#ifndef TPSERVE_COMMON_TEXT_TOKENIZER_H_
#define TPSERVE_COMMON_TEXT_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/text/bpe_cache.h"

namespace tpserve::text {

// A token from tokenizer.json's `added_tokens`, matched in raw text before BPE.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
};

// Thread-safe after Load: Encode/Decode are const and may run concurrently.
class Tokenizer {
 public:
  // Loads `model_dir`/tokenizer.json (or `model_dir` itself if it is a file).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir);
  // Builds a tokenizer from the text of a tokenizer.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);

  // Encodes UTF-8 text (invalid UTF-8 is replaced by U+FFFD first). With
  // `parse_special_tokens` false, special tokens' text is encoded as plain text
  // (non-special added tokens such as <think> are still recognised, like HF).
  std::vector<int32_t> Encode(std::string_view text, bool parse_special_tokens = true) const;
  // Decodes ids to text; invalid byte sequences become U+FFFD, unknown ids are skipped.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The raw bytes `id` contributes to a decode ("" for unknown ids); the
  // building block of incremental detokenization.
  std::string_view TokenBytes(int32_t id) const;

  // One past the largest id, added tokens included.
  int vocab_size() const { return vocab_size_; }
  // The id of a vocabulary entry or added token by its tokenizer.json spelling.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The tokenizer.json spelling of `id` ("" if unknown).
  std::string IdToToken(int32_t id) const;
  // True for added tokens flagged special (skipped by skip_special_tokens).
  bool IsSpecial(int32_t id) const;
  // All added tokens, in id order.
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  Tokenizer() = default;
  absl::Status Init(std::string_view json_text);
  // Appends the ids of one stretch of text that holds no added token.
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const;
  // Appends the BPE ids of one pre-tokenized piece (raw bytes).
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;
  void MergeSmall(std::vector<int32_t>* syms) const;
  void MergeLarge(std::vector<int32_t>* syms) const;
  // Returns the added token that matches at text[pos] (longest), if any.
  const AddedToken* MatchAddedAt(std::string_view text, size_t pos, bool parse_special) const;

  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  int vocab_size_ = 0;
  std::vector<std::string> id_to_bytes_;   // raw bytes per id ("" for holes)
  std::vector<std::string> id_to_token_;   // tokenizer.json spelling per id
  std::vector<uint8_t> is_special_;        // per id
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_id_{};
  std::vector<AddedToken> added_;
  // Added tokens indexed by their first byte, longest first.
  std::array<std::vector<const AddedToken*>, 256> added_by_first_byte_;
  bool ignore_merges_ = false;
  mutable BpeCache cache_;
};

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_TOKENIZER_H_
