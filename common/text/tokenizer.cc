#include "common/text/tokenizer.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text/byte_level.h"
#include "common/text/pretokenizer.h"
#include "common/text/unicode.h"

namespace tpserve::text {
namespace {

using nlohmann::json;

// Words longer than this use the heap-based merge loop.
constexpr size_t kSmallWordBytes = 48;

std::string TypeOf(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string()) return j["type"].get<std::string>();
  return "<no type>";
}

absl::Status CheckNormalizer(const json& n) {
  if (n.is_null() || TypeOf(n) == "NFC") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported tokenizer normalizer '", TypeOf(n), "' (only NFC is supported)"));
}

absl::Status CheckByteLevel(const json& j, const char* what) {
  if (TypeOf(j) != "ByteLevel") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported tokenizer ", what, " '", TypeOf(j),
                                                   "' (only ByteLevel is supported)"));
  }
  if (j.value("add_prefix_space", false)) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported ", what, ": ByteLevel add_prefix_space"));
  }
  return absl::OkStatus();
}

absl::Status CheckPreTokenizer(const json& p) {
  if (TypeOf(p) != "Sequence" || !p.contains("pretokenizers") || p["pretokenizers"].size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported pre_tokenizer '", TypeOf(p), "' (expected Sequence[Split, ByteLevel] as in Qwen)"));
  }
  const json& split = p["pretokenizers"][0];
  const json& bl = p["pretokenizers"][1];
  if (TypeOf(split) != "Split") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported pre_tokenizer step '", TypeOf(split), "' (expected Split)"));
  }
  const std::string pattern = split.contains("pattern") && split["pattern"].contains("Regex")
                                  ? split["pattern"]["Regex"].get<std::string>()
                                  : std::string("<not a regex>");
  if (pattern != kQwenSplitPattern) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported Split pattern (only Qwen's regex is implemented): ", pattern));
  }
  if (split.value("behavior", "") != "Isolated" || split.value("invert", false)) {
    return absl::InvalidArgumentError("unsupported Split behavior (expected Isolated, not inverted)");
  }
  TP_RETURN_IF_ERROR(CheckByteLevel(bl, "pre_tokenizer"));
  if (bl.value("use_regex", true)) {
    return absl::InvalidArgumentError("unsupported pre_tokenizer: ByteLevel with use_regex");
  }
  return absl::OkStatus();
}

// Accepts null or a string for string-or-null fields of the BPE model.
bool EmptyOrNull(const json& m, const char* key) {
  return !m.contains(key) || m[key].is_null() || (m[key].is_string() && m[key].get<std::string>().empty());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir) {
  std::error_code ec;
  const std::string path =
      std::filesystem::is_directory(model_dir, ec) ? model_dir + "/tokenizer.json" : model_dir;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  auto tok = FromJson(buf.str());
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat(path, ": ", tok.status().message()));
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  try {
    TP_RETURN_IF_ERROR(tok->Init(json_text));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer.json: ", e.what()));
  }
  return tok;
}

absl::Status Tokenizer::Init(std::string_view json_text) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("tokenizer.json is not a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) return absl::InvalidArgumentError("tokenizer.json has no model");
  const json& m = j["model"];
  const std::string type = m.contains("type") ? m["type"].get<std::string>() : "BPE";
  if (type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported tokenizer model type '", type, "' (only byte-level BPE is supported)"));
  }
  if (m.value("byte_fallback", false) || !EmptyOrNull(m, "continuing_subword_prefix") ||
      !EmptyOrNull(m, "end_of_word_suffix") || (m.contains("dropout") && !m["dropout"].is_null())) {
    return absl::InvalidArgumentError(
        "unsupported BPE options (byte_fallback, subword prefix/suffix or dropout)");
  }
  if (j.contains("normalizer")) TP_RETURN_IF_ERROR(CheckNormalizer(j["normalizer"]));
  TP_RETURN_IF_ERROR(CheckPreTokenizer(j.value("pre_tokenizer", json())));
  TP_RETURN_IF_ERROR(CheckByteLevel(j.value("decoder", json()), "decoder"));
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    TP_RETURN_IF_ERROR(CheckByteLevel(j["post_processor"], "post_processor"));
  }

  const json& vocab = m["vocab"];
  if (!vocab.is_object()) return absl::InvalidArgumentError("BPE vocab is not an object");
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) max_id = std::max(max_id, it.value().get<int32_t>());
  std::vector<AddedToken> added;
  if (j.contains("added_tokens")) {
    for (const json& a : j["added_tokens"]) {
      AddedToken t{a.at("id").get<int32_t>(), a.at("content").get<std::string>(), a.value("special", false),
                   a.value("lstrip", false), a.value("rstrip", false)};
      if (a.value("single_word", false)) {
        return absl::InvalidArgumentError(absl::StrCat("unsupported single_word added token ", t.content));
      }
      if (t.content.empty() || t.id < 0 || !IsValidUtf8(t.content)) {
        return absl::InvalidArgumentError("invalid added token in tokenizer.json");
      }
      max_id = std::max(max_id, t.id);
      added.push_back(std::move(t));
    }
  }
  if (max_id < 255 || max_id > 16'000'000) return absl::InvalidArgumentError("implausible vocabulary size");
  vocab_size_ = max_id + 1;
  id_to_bytes_.assign(vocab_size_, "");
  id_to_token_.assign(vocab_size_, "");
  is_special_.assign(vocab_size_, 0);
  token_to_id_.reserve(vocab_size_);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    if (id < 0) return absl::InvalidArgumentError("negative id in vocab");
    const std::string& spelling = it.key();
    auto bytes = SpellingToBytes(spelling);
    id_to_bytes_[id] = bytes ? *bytes : spelling;
    id_to_token_[id] = spelling;
    token_to_id_[spelling] = id;
  }
  byte_id_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = token_to_id_.find(BytesToSpelling(std::string(1, static_cast<char>(b))));
    if (it == token_to_id_.end()) return absl::InvalidArgumentError("byte-level vocab lacks a single-byte token");
    byte_id_[b] = it->second;
  }
  const json& merges = m["merges"];
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const json& mj : merges) {
    std::string a, b;
    if (mj.is_string()) {
      const std::string s = mj.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("invalid merge '", s, "'"));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (mj.is_array() && mj.size() == 2) {
      a = mj[0].get<std::string>();
      b = mj[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("invalid merge entry ", mj.dump()));
    }
    auto ia = token_to_id_.find(a), ib = token_to_id_.find(b), ic = token_to_id_.find(a + b);
    if (ia == token_to_id_.end() || ib == token_to_id_.end() || ic == token_to_id_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("merge '", a, " ", b, "' uses tokens not in vocab"));
    }
    merges_.try_emplace(PairKey(ia->second, ib->second), Merge{rank++, ic->second});
  }
  ignore_merges_ = m.value("ignore_merges", false);

  std::sort(added.begin(), added.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  added_ = std::move(added);
  for (const AddedToken& t : added_) {
    auto bytes = SpellingToBytes(t.content);
    id_to_bytes_[t.id] = bytes ? *bytes : t.content;
    id_to_token_[t.id] = t.content;
    is_special_[t.id] = t.special;
    token_to_id_[t.content] = t.id;
    added_by_first_byte_[static_cast<uint8_t>(t.content[0])].push_back(&t);
  }
  for (auto& v : added_by_first_byte_) {
    std::stable_sort(v.begin(), v.end(),
                     [](const AddedToken* x, const AddedToken* y) { return x->content.size() > y->content.size(); });
  }
  return absl::OkStatus();
}

const AddedToken* Tokenizer::MatchAddedAt(std::string_view text, size_t pos, bool parse_special) const {
  for (const AddedToken* t : added_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    if (t->special && !parse_special) continue;
    if (text.substr(pos, t->content.size()) == t->content) return t;
  }
  return nullptr;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool parse_special_tokens) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = Utf8Lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  size_t seg = 0;
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* t = added_by_first_byte_[static_cast<uint8_t>(text[pos])].empty()
                              ? nullptr
                              : MatchAddedAt(text, pos, parse_special_tokens);
    if (t == nullptr) {
      ++pos;
      continue;
    }
    size_t seg_end = pos;
    if (t->lstrip) {
      while (seg_end > seg && ClassOf(static_cast<uint8_t>(text[seg_end - 1])) & kWhitespace) --seg_end;
    }
    EncodeOrdinary(text.substr(seg, seg_end - seg), &ids);
    ids.push_back(t->id);
    pos += t->content.size();
    if (t->rstrip) {
      while (pos < text.size() && ClassOf(static_cast<uint8_t>(text[pos])) & kWhitespace) ++pos;
    }
    seg = pos;
  }
  EncodeOrdinary(text.substr(seg), &ids);
  return ids;
}

void Tokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const {
  if (text.empty()) return;
  std::string normalized;
  if (!IsNfcQuick(text)) {
    normalized = NormalizeNfc(text);
    text = normalized;
  }
  ForEachQwenPiece(text, [&](std::string_view piece) { EncodeWord(piece, ids); });
}

void Tokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.size() == 1) {
    ids->push_back(byte_id_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (cache_.Lookup(word, ids)) return;
  if (ignore_merges_) {
    if (auto it = token_to_id_.find(absl::string_view(BytesToSpelling(word))); it != token_to_id_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  thread_local std::vector<int32_t> syms;
  syms.clear();
  for (char c : word) syms.push_back(byte_id_[static_cast<uint8_t>(c)]);
  if (word.size() <= kSmallWordBytes) {
    MergeSmall(&syms);
  } else {
    MergeLarge(&syms);
  }
  cache_.Insert(word, syms.data(), syms.size());
  ids->insert(ids->end(), syms.begin(), syms.end());
}

void Tokenizer::MergeSmall(std::vector<int32_t>* syms_ptr) const {
  std::vector<int32_t>& syms = *syms_ptr;
  thread_local std::vector<Merge> pairs;  // pairs[i] is the merge of (syms[i], syms[i+1])
  pairs.clear();
  const auto lookup = [this](int32_t a, int32_t b) {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? Merge{INT_MAX, -1} : it->second;
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) pairs.push_back(lookup(syms[i], syms[i + 1]));
  while (!pairs.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < pairs.size(); ++i) {
      if (pairs[i].rank < pairs[best].rank) best = i;
    }
    if (pairs[best].rank == INT_MAX) break;
    syms[best] = pairs[best].new_id;
    syms.erase(syms.begin() + best + 1);
    pairs.erase(pairs.begin() + best);
    if (best > 0) pairs[best - 1] = lookup(syms[best - 1], syms[best]);
    if (best < pairs.size()) pairs[best] = lookup(syms[best], syms[best + 1]);
  }
}

void Tokenizer::MergeLarge(std::vector<int32_t>* syms_ptr) const {
  // Doubly linked symbols plus a heap of candidate merges ordered by (rank,
  // position): the same order HF's BPE applies them in.
  std::vector<int32_t>& syms = *syms_ptr;
  const int n = static_cast<int>(syms.size());
  std::vector<int> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  const auto push = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    auto it = merges_.find(PairKey(syms[i], syms[next[i]]));
    if (it != merges_.end()) heap.push({it->second.rank, i, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int i = c.pos;
    if (!alive[i] || next[i] < 0) continue;
    auto it = merges_.find(PairKey(syms[i], syms[next[i]]));
    if (it == merges_.end() || it->second.new_id != c.new_id) continue;  // stale entry
    const int j = next[i];
    syms[i] = c.new_id;
    alive[j] = 0;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  size_t w = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) syms[w++] = syms[i];
  syms.resize(w);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    if (skip_special_tokens && is_special_[id]) continue;
    bytes += id_to_bytes_[id];
  }
  if (IsValidUtf8(bytes)) return bytes;
  return Utf8Lossy(bytes);
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return {};
  return id_to_bytes_[id];
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return "";
  return id_to_token_[id];
}

bool Tokenizer::IsSpecial(int32_t id) const { return id >= 0 && id < vocab_size_ && is_special_[id]; }

}  // namespace tpserve::text
