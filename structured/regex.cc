#include "structured/regex.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace tpserve::structured {
namespace {

using Ranges = std::vector<CodepointRange>;

Ranges Digits() { return {{'0', '9'}}; }
Ranges Word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
Ranges Space() { return {{'\t', '\r'}, {' ', ' '}}; }

class RegexParser {
 public:
  RegexParser(GrammarBuilder* b, std::string_view p, const RegexOptions& o)
      : b_(b), p_(p), opt_(o) {}

  absl::StatusOr<ExprId> Parse() {
    bool anchored_start = false, anchored_end = false;
    if (!p_.empty() && p_[0] == '^') {
      anchored_start = true;
      pos_ = 1;
    }
    if (p_.size() > pos_ && p_.back() == '$' && !EscapedAt(p_.size() - 1)) {
      anchored_end = true;
      p_.remove_suffix(1);
    }
    TP_ASSIGN_OR_RETURN(ExprId body, ParseAlt());
    if (pos_ < p_.size()) return Error("unbalanced ')'");
    if (!opt_.search) return body;
    // A search: any characters may surround the match.
    auto any = [&] {
      return b_->Star(CharsetExpr(b_, {{0, GrammarBuilder::kMaxCodepoint}}, opt_.json_string));
    };
    std::vector<ExprId> seq;
    if (!anchored_start) seq.push_back(any());
    seq.push_back(body);
    if (!anchored_end) seq.push_back(any());
    return b_->Seq(std::move(seq));
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("regex: ", std::string(what), " at offset ", pos_, " in /", std::string(p_), "/"));
  }
  bool EscapedAt(size_t i) const {
    size_t n = 0;
    while (i > n && p_[i - n - 1] == '\\') ++n;
    return n % 2 == 1;
  }
  bool AtEnd() const { return pos_ >= p_.size(); }
  char Peek() const { return p_[pos_]; }

  absl::StatusOr<uint32_t> NextCodepoint() {
    const uint8_t c = static_cast<uint8_t>(p_[pos_]);
    int len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || pos_ + len > p_.size()) return Error("invalid UTF-8");
    uint32_t cp = len == 1 ? c : c & (0x3F >> (len - 1));
    for (int i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<uint8_t>(p_[pos_ + i]) & 0x3F);
    pos_ += len;
    return cp;
  }

  absl::StatusOr<ExprId> ParseAlt() {
    std::vector<ExprId> alts;
    TP_ASSIGN_OR_RETURN(ExprId first, ParseConcat());
    alts.push_back(first);
    while (!AtEnd() && Peek() == '|') {
      ++pos_;
      TP_ASSIGN_OR_RETURN(ExprId next, ParseConcat());
      alts.push_back(next);
    }
    return b_->Alt(std::move(alts));
  }

  absl::StatusOr<ExprId> ParseConcat() {
    std::vector<ExprId> items;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      TP_ASSIGN_OR_RETURN(ExprId atom, ParseAtom());
      TP_ASSIGN_OR_RETURN(ExprId rep, ParseQuantifiers(atom));
      items.push_back(rep);
    }
    return b_->Seq(std::move(items));
  }

  // Reads "{m}", "{m,}" or "{m,n}" at pos_; false (pos_ unchanged) if it is
  // not one, so the brace is a literal (as in Python).
  bool ReadBraces(int* min, int* max) {
    size_t i = pos_ + 1;
    auto number = [&](int* out) {
      size_t start = i;
      long v = 0;
      while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9' && v < 100000) v = v * 10 + (p_[i++] - '0');
      *out = static_cast<int>(v);
      return i > start;
    };
    if (!number(min)) return false;
    *max = *min;
    if (i < p_.size() && p_[i] == ',') {
      ++i;
      if (!number(max)) *max = GrammarBuilder::kUnbounded;
    }
    if (i >= p_.size() || p_[i] != '}') return false;
    pos_ = i + 1;
    return true;
  }

  absl::StatusOr<ExprId> ParseQuantifiers(ExprId atom) {
    while (!AtEnd()) {
      int min, max;
      const char c = Peek();
      if (c == '*') {
        min = 0, max = GrammarBuilder::kUnbounded, ++pos_;
      } else if (c == '+') {
        min = 1, max = GrammarBuilder::kUnbounded, ++pos_;
      } else if (c == '?') {
        min = 0, max = 1, ++pos_;
      } else if (c == '{' && ReadBraces(&min, &max)) {
        if (max != GrammarBuilder::kUnbounded && max < min) return Error("{m,n} with n < m");
      } else {
        break;
      }
      if (!AtEnd() && Peek() == '?') ++pos_;  // lazy: the same strings
      if (!AtEnd() && Peek() == '+') return Error("possessive quantifiers are not supported");
      atom = b_->Repeat(atom, min, max);
    }
    return atom;
  }

  absl::StatusOr<ExprId> ParseAtom() {
    const char c = Peek();
    switch (c) {
      case '(':
        return ParseGroup();
      case '[': {
        TP_ASSIGN_OR_RETURN(Ranges set, ParseClass());
        return Chars(set);
      }
      case '.':
        ++pos_;
        return Chars(ComplementRanges({{'\n', '\n'}}));
      case '^':
      case '$':
        return Error("anchors are only supported at the start and end of the pattern");
      case '*':
      case '+':
      case '?':
        return Error("nothing to repeat");
      case '\\': {
        TP_ASSIGN_OR_RETURN(Ranges set, ParseEscape(/*in_class=*/false));
        return Chars(set);
      }
      default: {
        TP_ASSIGN_OR_RETURN(uint32_t cp, NextCodepoint());
        return Chars({{cp, cp}});
      }
    }
  }

  absl::StatusOr<ExprId> ParseGroup() {
    ++pos_;  // '('
    if (p_.substr(pos_, 1) == "?") {
      const std::string_view rest = p_.substr(pos_ + 1);
      if (rest.substr(0, 1) == "=" || rest.substr(0, 1) == "!" || rest.substr(0, 2) == "<=" ||
          rest.substr(0, 2) == "<!") {
        return Error("lookaround assertions are not supported");
      }
      if (rest.substr(0, 1) == ":") {
        pos_ += 2;
      } else if (rest.substr(0, 1) == "<" || rest.substr(0, 2) == "P<") {
        const size_t close = p_.find('>', pos_);
        if (close == std::string_view::npos) return Error("unterminated group name");
        pos_ = close + 1;
      } else {
        return Error("inline flags and other (?...) groups are not supported");
      }
    }
    TP_ASSIGN_OR_RETURN(ExprId inner, ParseAlt());
    if (AtEnd() || Peek() != ')') return Error("missing ')'");
    ++pos_;
    return inner;
  }

  absl::StatusOr<Ranges> ParseClass() {
    ++pos_;  // '['
    bool negate = false;
    if (!AtEnd() && Peek() == '^') {
      negate = true;
      ++pos_;
    }
    Ranges set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("missing ']'");
      if (Peek() == ']' && !first) break;
      first = false;
      Ranges item;
      if (Peek() == '\\') {
        TP_ASSIGN_OR_RETURN(item, ParseEscape(/*in_class=*/true));
      } else {
        TP_ASSIGN_OR_RETURN(uint32_t cp, NextCodepoint());
        item = {{cp, cp}};
      }
      const bool single = item.size() == 1 && item[0].lo == item[0].hi;
      if (single && pos_ + 1 < p_.size() && Peek() == '-' && p_[pos_ + 1] != ']') {
        ++pos_;
        Ranges hi_item;
        if (Peek() == '\\') {
          TP_ASSIGN_OR_RETURN(hi_item, ParseEscape(/*in_class=*/true));
        } else {
          TP_ASSIGN_OR_RETURN(uint32_t cp, NextCodepoint());
          hi_item = {{cp, cp}};
        }
        if (hi_item.size() != 1 || hi_item[0].lo != hi_item[0].hi) return Error("bad class range");
        if (hi_item[0].lo < item[0].lo) return Error("class range out of order");
        item[0].hi = hi_item[0].lo;
      }
      set.insert(set.end(), item.begin(), item.end());
    }
    ++pos_;  // ']'
    return negate ? ComplementRanges(set) : NormalizeRanges(set);
  }

  absl::StatusOr<uint32_t> Hex(int digits) {
    if (pos_ + digits > p_.size()) return Error("truncated hex escape");
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char h = p_[pos_++];
      const int d = h >= '0' && h <= '9' ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) return Error("bad hex escape");
      v = v * 16 + d;
    }
    return v;
  }

  absl::StatusOr<Ranges> ParseEscape(bool in_class) {
    ++pos_;  // '\'
    if (AtEnd()) return Error("trailing backslash");
    const char c = p_[pos_++];
    auto one = [](uint32_t cp) { return Ranges{{cp, cp}}; };
    switch (c) {
      case 'd': return Digits();
      case 'D': return ComplementRanges(Digits());
      case 'w': return Word();
      case 'W': return ComplementRanges(Word());
      case 's': return Space();
      case 'S': return ComplementRanges(Space());
      case 'n': return one('\n');
      case 't': return one('\t');
      case 'r': return one('\r');
      case 'f': return one('\f');
      case 'v': return one('\v');
      case '0': return one(0);
      case 'x': {
        TP_ASSIGN_OR_RETURN(uint32_t v, Hex(2));
        return one(v);
      }
      case 'u': {
        TP_ASSIGN_OR_RETURN(uint32_t v, Hex(4));
        return one(v);
      }
      case 'b':
        if (in_class) return one('\b');
        return Error("word boundaries (\\b) are not supported");
      case 'B': return Error("word boundaries (\\B) are not supported");
      case 'p':
      case 'P': return Error("Unicode property classes (\\p) are not supported");
      default:
        break;
    }
    if (c >= '1' && c <= '9') return Error("backreferences are not supported");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      return Error(absl::StrCat("unknown escape \\", std::string(1, c)));
    }
    --pos_;
    TP_ASSIGN_OR_RETURN(uint32_t cp, NextCodepoint());
    return one(cp);
  }

  ExprId Chars(const Ranges& set) { return CharsetExpr(b_, set, opt_.json_string); }

  GrammarBuilder* b_;
  std::string_view p_;
  const RegexOptions opt_;
  size_t pos_ = 0;
};

}  // namespace

ExprId CharsetExpr(GrammarBuilder* b, const std::vector<CodepointRange>& ranges, bool json_string) {
  if (!json_string) return b->Codepoints(ranges);
  // Inside a JSON string: plain characters as themselves, the rest escaped.
  std::vector<CodepointRange> plain;
  std::vector<ExprId> alts;
  for (const CodepointRange& r : NormalizeRanges(ranges)) {
    for (uint32_t cp = r.lo; cp <= r.hi && cp < 0x20; ++cp) {
      const char* esc = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp == '\r' ? "\\r" : nullptr;
      alts.push_back(b->Literal(esc ? std::string(esc) : absl::StrFormat("\\u%04x", cp)));
    }
    uint32_t lo = std::max<uint32_t>(r.lo, 0x20);
    for (uint32_t special : {uint32_t{'"'}, uint32_t{'\\'}}) {
      if (lo <= special && special <= r.hi) {
        if (lo < special) plain.push_back({lo, special - 1});
        alts.push_back(b->Literal(special == '"' ? "\\\"" : "\\\\"));
        lo = special + 1;
      }
    }
    if (lo <= r.hi) plain.push_back({lo, r.hi});
  }
  if (!plain.empty()) alts.insert(alts.begin(), b->Codepoints(plain));
  return b->Alt(std::move(alts));
}

absl::StatusOr<ExprId> AddRegex(GrammarBuilder* builder, std::string_view pattern,
                                const RegexOptions& options) {
  return RegexParser(builder, pattern, options).Parse();
}

}  // namespace tpserve::structured
