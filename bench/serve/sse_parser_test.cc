#include "bench/serve/sse_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tpserve::bench {
namespace {

std::vector<std::string> Events(const std::vector<std::string>& pieces) {
  SseParser p;
  std::vector<std::string> out;
  auto add = [&](std::string_view d) { out.emplace_back(d); };
  for (const std::string& piece : pieces) p.Feed(piece, add);
  p.Finish(add);
  return out;
}

const char kStream[] =
    ": ping\n\n"
    "data: {\"a\":1}\n\n"
    "event: message\nid: 7\ndata: {\"b\":2}\n\n"
    "data:no-space\n\n"
    "data: line1\ndata: line2\n\n"
    "data: [DONE]\n\n";
const std::vector<std::string> kExpected = {"{\"a\":1}", "{\"b\":2}", "no-space", "line1\nline2",
                                            "[DONE]"};

TEST(SseParserTest, WholeStream) { EXPECT_EQ(Events({kStream}), kExpected); }

TEST(SseParserTest, EverySplitPointGivesTheSameEvents) {
  const std::string s = kStream;
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(Events({s.substr(0, cut), s.substr(cut)}), kExpected) << "cut at " << cut;
  }
}

TEST(SseParserTest, ByteByByteWithCrLf) {
  std::string crlf;
  for (char c : std::string(kStream)) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  std::vector<std::string> bytes;
  for (char c : crlf) bytes.emplace_back(1, c);
  EXPECT_EQ(Events(bytes), kExpected);
  // Lone CR line endings too.
  std::string cr = kStream;
  for (char& c : cr) {
    if (c == '\n') c = '\r';
  }
  EXPECT_EQ(Events({cr.substr(0, 11), cr.substr(11)}), kExpected);
}

TEST(SseParserTest, EventsArriveAsSoonAsTheirBlankLineDoes) {
  SseParser p;
  std::vector<std::string> out;
  auto add = [&](std::string_view d) { out.emplace_back(d); };
  p.Feed("data: x\n", add);
  EXPECT_TRUE(out.empty());
  p.Feed("\ndata: y", add);
  EXPECT_EQ(out, (std::vector<std::string>{"x"}));
  p.Finish(add);  // a last event without its blank line still counts
  EXPECT_EQ(out, (std::vector<std::string>{"x", "y"}));
}

}  // namespace
}  // namespace tpserve::bench
