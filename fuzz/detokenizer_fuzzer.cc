// Fuzzes the streaming output path: IncrementalDetokenizer over arbitrary id
// sequences and StopStringMatcher over its deltas. Checks their contracts
// (detokenizer.h): the deltas are valid UTF-8 and concatenate to the full
// decode; the matcher never emits text past a stop, and the stop it reports
// is the one that completes first in the stream.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/detokenizer.h"
#include "common/text/tokenizer.h"
#include "common/text/unicode.h"
#include "fuzz/fixture_tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace {

using tpserve::fuzz::Check;

const tpserve::text::Tokenizer* g_tokenizer = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  g_tokenizer = &tpserve::fuzz::FixtureTokenizer((*argv)[0]);
  return 0;
}

// Input: "<flags byte><stop strings, one per line>\n---\n<ids as 3-byte LE>".
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const tpserve::text::Tokenizer& tok = *g_tokenizer;
  const bool skip_special = data[0] & 1;
  auto parts = tpserve::fuzz::SplitParts(data + 1, size - 1, 2);
  std::vector<std::string> stops;
  if (parts.size() == 2) {
    std::string_view s = parts[0];
    while (!s.empty() && stops.size() < 16) {
      size_t nl = s.find('\n');
      std::string_view line = s.substr(0, nl);
      // The gateway only passes valid UTF-8 stop strings (they come from JSON).
      if (tpserve::text::IsValidUtf8(line)) stops.emplace_back(line);
      if (nl == std::string_view::npos) break;
      s.remove_prefix(nl + 1);
    }
  }
  const std::string_view id_bytes = parts.back();
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 < id_bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(id_bytes[i]) | (static_cast<uint8_t>(id_bytes[i + 1]) << 8) |
                       (static_cast<uint8_t>(id_bytes[i + 2]) << 16);
    // Mostly real ids, a few unknown ones (past the vocabulary).
    ids.push_back(static_cast<int32_t>(v % (tok.vocab_size() + 64)));
  }

  tpserve::text::IncrementalDetokenizer detok(tok, skip_special);
  tpserve::text::StopStringMatcher matcher(stops);
  std::string streamed;
  std::string emitted;
  std::optional<size_t> stop_index;
  auto feed = [&](const std::string& piece) {
    Check(tpserve::text::IsValidUtf8(piece), "detokenizer delta is not valid UTF-8");
    streamed += piece;
    if (stop_index) return;
    auto r = matcher.Add(piece);
    emitted += r.text;
    stop_index = r.stop_index;
  };
  for (int32_t id : ids) {
    feed(detok.Add(id));
    Check(detok.pending_bytes() <= 3, "more than 3 bytes held back");
  }
  feed(detok.Flush());
  Check(streamed == tok.Decode(ids, skip_special), "deltas differ from the full decode");

  if (!stop_index) {
    emitted += matcher.Flush();
    Check(emitted == streamed, "text lost without a stop");
    for (const auto& s : stops) {
      Check(s.empty() || streamed.find(s) == std::string::npos, "a stop string occurred but was not found");
    }
    return 0;
  }
  Check(matcher.stopped(), "stop index set but matcher not stopped");
  Check(*stop_index < stops.size(), "stop index out of range");
  const std::string& stop = stops[*stop_index];
  Check(streamed.compare(0, emitted.size(), emitted) == 0, "emitted text is not a prefix of the stream");
  Check(streamed.compare(emitted.size(), stop.size(), stop) == 0, "output does not end right before the stop");
  // No stop completes earlier in the stream.
  const size_t end = emitted.size() + stop.size();
  for (const auto& s : stops) {
    if (s.empty()) continue;
    const size_t at = streamed.find(s);
    Check(at == std::string::npos || at + s.size() >= end, "an earlier-completing stop was missed");
  }
  return 0;
}
