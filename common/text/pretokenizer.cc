#include "common/text/pretokenizer.h"

#include <cstdint>

#include "common/text/unicode.h"

namespace tpserve::text {
namespace {

// One decoded character: its code point, byte length and class flags.
struct Ch {
  uint32_t cp = 0;
  int len = 0;
  uint8_t cls = 0;
};

inline bool At(std::string_view s, size_t i, Ch* c) {
  if (i >= s.size()) return false;
  const auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) {
    // ASCII fast path: no table lookup.
    c->cp = b;
    c->len = 1;
    c->cls = ((b | 0x20) >= 'a' && (b | 0x20) <= 'z')  ? kLetter
             : (b >= '0' && b <= '9')                   ? kNumber
             : (b == ' ' || (b >= 0x09 && b <= 0x0D)) ? kWhitespace
                                                        : 0;
    return true;
  }
  c->cp = DecodeUtf8(s, i, &c->len);
  c->cls = ClassOf(c->cp);
  return true;
}

inline bool IsCrLf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// Advances over characters whose flags satisfy `pred`.
template <typename Pred>
size_t Run(std::string_view s, size_t i, Pred pred) {
  Ch c;
  while (At(s, i, &c) && pred(c)) i += c.len;
  return i;
}

// Case-insensitive (Unicode simple folding) comparison with an ASCII letter.
inline bool FoldEq(uint32_t cp, char lower) {
  if (cp == static_cast<uint32_t>(lower) || cp == static_cast<uint32_t>(lower - 32)) return true;
  return lower == 's' && cp == 0x17F;  // LATIN SMALL LETTER LONG S folds to 's'
}

size_t MatchContraction(std::string_view s, size_t i) {
  Ch c1, c2;
  if (!At(s, i + 1, &c1)) return 0;
  for (char x : {'s', 't', 'm', 'd'}) {
    if (FoldEq(c1.cp, x)) return i + 1 + c1.len;
  }
  if (!At(s, i + 1 + c1.len, &c2)) return 0;
  if ((FoldEq(c1.cp, 'r') && FoldEq(c2.cp, 'e')) || (FoldEq(c1.cp, 'v') && FoldEq(c2.cp, 'e')) ||
      (FoldEq(c1.cp, 'l') && FoldEq(c2.cp, 'l'))) {
    return i + 1 + c1.len + c2.len;
  }
  return 0;
}

}  // namespace

size_t QwenSplitMatchEnd(std::string_view s, size_t i) {
  Ch c0;
  if (!At(s, i, &c0)) return i;
  const auto is_letter = [](const Ch& c) { return (c.cls & kLetter) != 0; };
  const auto is_symbol = [](const Ch& c) { return (c.cls & (kLetter | kNumber | kWhitespace)) == 0; };
  const auto is_crlf = [](const Ch& c) { return IsCrLf(c.cp); };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0.cp == '\'') {
    if (size_t end = MatchContraction(s, i); end != 0) return end;
  }
  Ch c1;
  const bool has_next = At(s, i + c0.len, &c1);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if ((c0.cls & (kLetter | kNumber)) == 0 && !IsCrLf(c0.cp) && has_next && is_letter(c1)) {
    return Run(s, i + c0.len, is_letter);
  }
  if (c0.cls & kLetter) return Run(s, i, is_letter);
  // \p{N}
  if (c0.cls & kNumber) return i + c0.len;
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  if (c0.cp == ' ' && has_next && is_symbol(c1)) {
    return Run(s, Run(s, i + 1, is_symbol), is_crlf);
  }
  if (is_symbol(c0)) return Run(s, Run(s, i, is_symbol), is_crlf);
  // c0 is white space from here on.
  size_t end = i;
  size_t after_last_crlf = 0;
  size_t last_start = i;
  Ch c;
  while (At(s, end, &c) && (c.cls & kWhitespace)) {
    last_start = end;
    end += c.len;
    if (IsCrLf(c.cp)) after_last_crlf = end;
  }
  // \s*[\r\n]+ : backtracks to the last line break of the run.
  if (after_last_crlf != 0) return after_last_crlf;
  // \s+(?!\S) : the whole run at the end of text, else all but its last char.
  if (end == s.size()) return end;
  if (last_start > i) return last_start;
  // \s+
  return end;
}

}  // namespace tpserve::text
