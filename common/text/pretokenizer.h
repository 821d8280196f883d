// Qwen's Split pre-tokenizer, hand-compiled from its regex:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
//    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with the leftmost-first alternation and backtracking semantics of
// Oniguruma (what HF tokenizers uses), without a regex engine.
#ifndef TPSERVE_COMMON_TEXT_PRETOKENIZER_H_
#define TPSERVE_COMMON_TEXT_PRETOKENIZER_H_

#include <cstddef>
#include <string_view>

namespace tpserve::text {

// The exact pattern string this pre-tokenizer implements, as stored in
// tokenizer.json; any other pattern is refused at load time.
inline constexpr std::string_view kQwenSplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Returns the end (byte offset) of the regex match starting at `pos` of the
// valid UTF-8 string `s`. Every position matches, so pieces tile the text.
size_t QwenSplitMatchEnd(std::string_view s, size_t pos);

// Calls `fn(piece)` for each piece of `s` in order.
template <typename Fn>
void ForEachQwenPiece(std::string_view s, Fn&& fn) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t end = QwenSplitMatchEnd(s, pos);
    fn(s.substr(pos, end - pos));
    pos = end;
  }
}

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_PRETOKENIZER_H_
