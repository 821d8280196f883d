// Tokenizer for Jinja template source: text runs, tag delimiters and
// expression tokens, with whitespace control applied (trim_blocks and
// lstrip_blocks on, as transformers configures Jinja for chat templates).
#ifndef TPSERVE_COMMON_TEXT_JINJA_LEXER_H_
#define TPSERVE_COMMON_TEXT_JINJA_LEXER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/text/jinja_ast.h"

namespace tpserve::text::jinja {

// One lexical token.
struct Token {
  enum class Kind { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat,
                    kOp, kEof };
  Kind kind;
  std::string text;  // text, name, decoded string literal, number spelling or operator
  Pos pos;
};

// Splits `source` into tokens ending with kEof; errors carry line:col.
absl::StatusOr<std::vector<Token>> LexTemplate(const std::string& source);

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_LEXER_H_
