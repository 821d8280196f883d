// JSON Schema → grammar. Supported: type (and lists of types), properties /
// required / additionalProperties, enum, const, items / prefixItems with
// minItems / maxItems, minLength / maxLength, pattern, format (date, time,
// date-time, uuid, email, ipv4), integer and number bounds, anyOf / oneOf
// (oneOf's exclusivity is not enforced), single-element allOf, $ref into
// $defs / definitions (recursion allowed). Any other keyword is an
// InvalidArgument naming it. docs/structured_output.md lists the details.
#ifndef TPSERVE_STRUCTURED_JSON_SCHEMA_H_
#define TPSERVE_STRUCTURED_JSON_SCHEMA_H_

#include <string_view>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>
#include "structured/grammar.h"

namespace tpserve::structured {

struct JsonGrammarOptions {
  // At most this many of [ \t\n\r] between two JSON tokens, so a model cannot
  // stall in whitespace (0: compact JSON only).
  int max_whitespace = 12;
  // An object schema without additionalProperties allows no other keys (as
  // OpenAI's strict mode and xgrammar do); false follows JSON Schema (any).
  bool strict_objects = true;
  GrammarLimits limits;
};

// The grammar of documents valid under `schema` (JSON text).
absl::StatusOr<Grammar> JsonSchemaGrammar(std::string_view schema,
                                          const JsonGrammarOptions& options = {});
absl::StatusOr<Grammar> JsonSchemaGrammarFromJson(const nlohmann::ordered_json& schema,
                                          const JsonGrammarOptions& options = {});
// Any JSON object (response_format json_object).
absl::StatusOr<Grammar> JsonObjectGrammar(const JsonGrammarOptions& options = {});

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_JSON_SCHEMA_H_
