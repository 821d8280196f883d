// Python str semantics for the Jinja interpreter (code-point indexing,
// strip/split/replace, case helpers) and the str/dict methods templates call.
#ifndef TPSERVE_COMMON_TEXT_JINJA_STRINGS_H_
#define TPSERVE_COMMON_TEXT_JINJA_STRINGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/text/jinja_budget.h"
#include "common/text/jinja_value.h"

namespace tpserve::text::jinja {

// Number of code points in valid UTF-8 `s`.
size_t CodePointCount(const std::string& s);
// Byte offset of each code point, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(const std::string& s);
// str.strip/lstrip/rstrip: `chars` null strips Python white space.
std::string PyStrip(const std::string& s, const std::string* chars, bool left, bool right);
// str.split(sep, maxsplit): `sep` null splits on runs of white space.
std::vector<std::string> PySplit(const std::string& s, const std::string* sep, int64_t maxsplit);
// str.replace(old, new, count) (count < 0: all); RESOURCE_EXHAUSTED past
// the budget's max_value_bytes, DEADLINE_EXCEEDED past its deadline.
absl::StatusOr<Value> PyReplace(const std::string& s, const std::string& from, const std::string& to,
                                int64_t count, RenderBudget& budget);
// Case mapping for ASCII letters; other characters are unchanged.
std::string AsciiUpper(std::string s);
std::string AsciiLower(std::string s);
std::string PyCapitalize(const std::string& s);
std::string PyTitle(const std::string& s);
// Jinja's indent filter (width, first, blank).
absl::StatusOr<Value> JinjaIndent(const std::string& s, const CallArgs& a);

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_STRINGS_H_
