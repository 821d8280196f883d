// UTF-8 helpers and the Unicode properties the tokenizer needs (letters,
// numbers, white space, NFC), backed by generated tables instead of ICU.
#ifndef TPSERVE_COMMON_TEXT_UNICODE_H_
#define TPSERVE_COMMON_TEXT_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tpserve::text {

// Bit flags describing one code point.
enum CharClass : uint8_t {
  kLetter = 1,      // \p{L}
  kNumber = 2,      // \p{N}
  kWhitespace = 4,  // \s (Unicode White_Space)
  kNfcUnsafe = 8,   // may change, or change its neighbours, under NFC
};

// Returns the CharClass flags of `cp`.
uint8_t ClassOf(uint32_t cp);

// Decodes one UTF-8 code point at `s[i]` of well-formed UTF-8 and returns its
// length; input must already be valid (see IsValidUtf8).
inline uint32_t DecodeUtf8(std::string_view s, size_t i, int* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *len = 2;
    return ((b0 & 0x1F) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F);
  }
  if (b0 < 0xF0) {
    *len = 3;
    return ((b0 & 0x0F) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 6) |
           (static_cast<uint8_t>(s[i + 2]) & 0x3F);
  }
  *len = 4;
  return ((b0 & 0x07) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 12) |
         ((static_cast<uint8_t>(s[i + 2]) & 0x3F) << 6) | (static_cast<uint8_t>(s[i + 3]) & 0x3F);
}

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(uint32_t cp, std::string* out);

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Length of the longest prefix of `s` that can be decoded now: everything
// except a trailing sequence that is a valid but incomplete start of a code
// point (which more bytes could still complete).
size_t DecodablePrefixLength(std::string_view s);

// Replaces every ill-formed subsequence with U+FFFD exactly as Rust's
// String::from_utf8_lossy (and Python's errors="replace") do: one U+FFFD per
// maximal subpart.
std::string Utf8Lossy(std::string_view s);

// Canonical composition (NFC). Input must be valid UTF-8.
std::string NormalizeNfc(std::string_view s);

// True if `s` (valid UTF-8) certainly is unchanged by NFC; cheap pre-check.
bool IsNfcQuick(std::string_view s);

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_UNICODE_H_
