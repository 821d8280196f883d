#include "structured/vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::structured {

TokenVocabulary::TokenVocabulary(std::vector<std::string> token_bytes, std::vector<int32_t> eos_ids,
                                 const std::vector<int32_t>& special_ids, int mask_size)
    : size_(std::max<int>(mask_size, static_cast<int>(token_bytes.size()))),
      bytes_(std::move(token_bytes)),
      eos_ids_(std::move(eos_ids)) {
  std::vector<char> excluded(bytes_.size(), 0);
  for (int32_t id : special_ids) {
    if (id >= 0 && id < static_cast<int32_t>(excluded.size())) excluded[id] = 1;
  }
  for (int32_t id : eos_ids_) {
    if (id >= 0 && id < static_cast<int32_t>(excluded.size())) excluded[id] = 1;
  }
  matchable_.assign(bytes_.size(), 0);
  for (int32_t id = 0; id < static_cast<int32_t>(bytes_.size()); ++id) {
    if (!excluded[id] && !bytes_[id].empty()) {
      sorted_.push_back(id);
      matchable_[id] = 1;
    }
  }
  std::sort(sorted_.begin(), sorted_.end(),
            [this](int32_t a, int32_t b) { return bytes_[a] < bytes_[b]; });
  size_t pos = 0;
  for (int b = 0; b <= 256; ++b) {
    while (pos < sorted_.size() && static_cast<uint8_t>(bytes_[sorted_[pos]][0]) < b) ++pos;
    first_byte_begin_[b] = static_cast<int32_t>(pos);
  }
  first_byte_begin_[256] = static_cast<int32_t>(sorted_.size());
  lcp_.assign(sorted_.size(), 0);
  for (size_t i = 0; i < sorted_.size(); ++i) {
    const std::string& cur = bytes_[sorted_[i]];
    max_token_bytes_ = std::max<int>(max_token_bytes_, cur.size());
    if (i == 0) continue;
    const std::string& prev = bytes_[sorted_[i - 1]];
    size_t n = 0;
    while (n < prev.size() && n < cur.size() && prev[n] == cur[n]) ++n;
    lcp_[i] = static_cast<int32_t>(n);
  }
}

bool TokenVocabulary::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

absl::StatusOr<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::FromTokenizer(
    const text::Tokenizer& tokenizer, std::vector<int32_t> eos_ids, int mask_size) {
  const int n = tokenizer.vocab_size();
  if (mask_size != 0 && mask_size < n) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask size ", mask_size, " is below the tokenizer's vocabulary ", n));
  }
  for (int32_t id : eos_ids) {
    if (id < 0 || id >= std::max(n, mask_size)) {
      return absl::InvalidArgumentError(absl::StrCat("EOS id ", id, " is outside the vocabulary"));
    }
  }
  std::vector<std::string> bytes(n);
  std::vector<int32_t> special;
  for (int32_t id = 0; id < n; ++id) {
    bytes[id] = std::string(tokenizer.TokenBytes(id));
    if (tokenizer.IsSpecial(id)) special.push_back(id);
  }
  return std::make_shared<const TokenVocabulary>(std::move(bytes), std::move(eos_ids), special,
                                                 mask_size);
}

}  // namespace tpserve::structured
