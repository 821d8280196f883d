#include "common/text/byte_level.h"

#include "common/text/unicode.h"

namespace tpserve::text {
namespace {

struct Tables {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};  // -1 where no byte maps
};

const Tables& GetTables() {
  static const Tables t = [] {
    Tables t;
    t.cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes spell themselves; the rest are shifted past 255.
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t.byte_to_cp[b] = printable ? b : next++;
      t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

uint32_t ByteToCodePoint(uint8_t b) { return GetTables().byte_to_cp[b]; }

std::optional<std::string> SpellingToBytes(std::string_view spelling) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(spelling.size());
  for (size_t i = 0; i < spelling.size();) {
    int len;
    const uint32_t cp = DecodeUtf8(spelling, i, &len);
    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(t.cp_to_byte[cp]));
    i += len;
  }
  return out;
}

std::string BytesToSpelling(std::string_view bytes) {
  std::string out;
  for (char c : bytes) AppendUtf8(ByteToCodePoint(static_cast<uint8_t>(c)), &out);
  return out;
}

}  // namespace tpserve::text
