// Internal to the JSON Schema front end: the converter whose methods are
// split between json_schema.cc (structure) and json_schema_scalars.cc.
#ifndef TPSERVE_STRUCTURED_JSON_SCHEMA_CONVERTER_H_
#define TPSERVE_STRUCTURED_JSON_SCHEMA_CONVERTER_H_

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "structured/expr.h"
#include "structured/json_schema.h"

namespace tpserve::structured {

using Json = nlohmann::ordered_json;

class JsonSchemaConverter {
 public:
  JsonSchemaConverter(GrammarBuilder* b, const JsonGrammarOptions& options, const Json* root);

  // The expression of documents valid under `schema` (found at `path`).
  absl::StatusOr<ExprId> Convert(const Json& schema, const std::string& path);
  // Any JSON value / any JSON object.
  ExprId AnyValue() { return b_->Ref(AnyValueRule()); }
  ExprId AnyObject();

 private:
  absl::Status CheckKeywords(const Json& schema, const std::string& path) const;
  absl::StatusOr<ExprId> ConvertRef(const std::string& ref, const std::string& path);
  absl::StatusOr<ExprId> ConvertType(const Json& schema, const std::string& type,
                                     const std::string& path);
  absl::StatusOr<ExprId> ConvertObject(const Json& schema, const std::string& path);
  absl::StatusOr<ExprId> ConvertArray(const Json& schema, const std::string& path);
  // json_schema_scalars.cc
  absl::StatusOr<ExprId> ConvertString(const Json& schema, const std::string& path);
  absl::StatusOr<ExprId> ConvertNumber(const Json& schema, bool integer, const std::string& path);
  absl::StatusOr<ExprId> Format(const std::string& format, const std::string& path);
  ExprId StringBody();  // the characters of any JSON string
  ExprId PlainString() { return b_->Ref(StringRule()); }
  RuleId AnyValueRule();
  RuleId StringRule();

  // Whitespace between tokens; `ws` around a separator.
  ExprId Ws() { return ws_; }
  ExprId Sep(const char* sep) { return b_->Seq({ws_, b_->Literal(sep), ws_}); }
  // open ws contents ws close, or (if may_be_empty) open ws close.
  ExprId Bracketed(const char* open, const std::vector<ExprId>& contents, bool may_be_empty,
                   const char* close);
  // A new rule with `body`, referenced: keeps each composite its own small
  // automaton whose token masks are shared by every use.
  ExprId AsRule(const std::string& name, ExprId body);

  GrammarBuilder* b_;
  const JsonGrammarOptions options_;
  const Json* root_;
  ExprId ws_;
  RuleId any_value_ = -1, any_object_ = -1, string_ = -1, number_ = -1, integer_ = -1;
  std::map<std::string, RuleId> refs_;
  int depth_ = 0;
};

// "invalid JSON Schema at <path>: <what>"
absl::Status SchemaError(const std::string& path, const std::string& what);

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_JSON_SCHEMA_CONVERTER_H_
