// GPT-2 byte-level alphabet: every byte is spelled as one printable code point
// in vocab files, so that BPE vocabularies can be stored as JSON strings.
#ifndef TPSERVE_COMMON_TEXT_BYTE_LEVEL_H_
#define TPSERVE_COMMON_TEXT_BYTE_LEVEL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tpserve::text {

// The code point that spells byte `b` in a byte-level vocabulary.
uint32_t ByteToCodePoint(uint8_t b);

// Converts a vocabulary spelling to raw bytes. Returns nullopt if some code
// point is outside the byte-level alphabet (HF then uses the UTF-8 as is).
std::optional<std::string> SpellingToBytes(std::string_view spelling);

// Converts raw bytes to their vocabulary spelling.
std::string BytesToSpelling(std::string_view bytes);

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_BYTE_LEVEL_H_
