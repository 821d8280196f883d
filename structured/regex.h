// A practical regex subset → grammar expression: literals (UTF-8), `.`,
// classes with ranges and negation, \d \w \s (and negations), escapes
// (\n \t \xHH \uHHHH ...), groups ((...), (?:...), named), alternation,
// quantifiers * + ? {m} {m,} {m,n} (lazy forms match the same strings).
// Lookaround, backreferences, word boundaries and inline flags are rejected.
#ifndef TPSERVE_STRUCTURED_REGEX_H_
#define TPSERVE_STRUCTURED_REGEX_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "structured/expr.h"

namespace tpserve::structured {

struct RegexOptions {
  // JSON Schema `pattern` semantics: the string need only contain a match
  // unless the pattern is anchored with ^ / $. Otherwise (guided_regex) the
  // whole output must match.
  bool search = false;
  // Matches the characters of a JSON string body: `"` and `\` come out
  // escaped, control characters as \n \t \r or \u00XX.
  bool json_string = false;
};

// Adds `pattern` to `builder`. InvalidArgument names the unsupported feature
// or the syntax error and its offset.
absl::StatusOr<ExprId> AddRegex(GrammarBuilder* builder, std::string_view pattern,
                                const RegexOptions& options = {});

// The expression of one character from `ranges`, as RegexOptions::json_string
// says (used by the JSON Schema front end too).
ExprId CharsetExpr(GrammarBuilder* builder, const std::vector<CodepointRange>& ranges,
                   bool json_string);

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_REGEX_H_
