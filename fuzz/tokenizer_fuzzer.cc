// Fuzzes the BPE tokenizer (the fixture's Qwen2 tokenizer.json) with
// arbitrary bytes: encoding never fails or yields an id outside the vocab,
// decoding gives valid UTF-8, and ASCII text survives an encode/decode round
// trip (NFC leaves ASCII alone, so it must come back byte for byte).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/tokenizer.h"
#include "common/text/unicode.h"
#include "fuzz/fixture_tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace {

using tpserve::fuzz::Check;

const tpserve::text::Tokenizer* g_tokenizer = nullptr;

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  g_tokenizer = &tpserve::fuzz::FixtureTokenizer((*argv)[0]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const tpserve::text::Tokenizer& tok = *g_tokenizer;
  // The first byte picks the options; the rest is the text.
  const bool parse_special = data[0] & 1;
  const bool skip_special = data[0] & 2;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::vector<int32_t> ids = tok.Encode(text, parse_special);
  for (int32_t id : ids) Check(id >= 0 && id < tok.vocab_size(), "encoded id outside the vocabulary");
  const std::string decoded = tok.Decode(ids, skip_special);
  Check(tpserve::text::IsValidUtf8(decoded), "decode gave invalid UTF-8");
  if (IsAscii(text) && !skip_special) Check(decoded == text, "ASCII text did not round-trip");

  // The same bytes read as token ids (little-endian uint16, some past the
  // vocabulary): unknown ids are skipped, never read out of bounds.
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 1 < text.size(); i += 2) {
    raw.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8)) * 3 -
                  1000);
  }
  Check(tpserve::text::IsValidUtf8(tok.Decode(raw, skip_special)), "decode of raw ids gave invalid UTF-8");
  for (int32_t id : raw) (void)tok.TokenBytes(id), (void)tok.IdToToken(id), (void)tok.IsSpecial(id);
  return 0;
}
