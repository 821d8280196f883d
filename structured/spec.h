// The grammar spec: what the gateway sends with a request and workers
// compile — one canonical JSON text, so equal requests share a compiled
// grammar. Kinds:
//   {"type": "json_schema", "schema": {...}}
//   {"type": "json_object"}
//   {"type": "regex", "pattern": "..."}
//   {"type": "choice", "choices": ["a", "b"]}
//   {"type": "tool_calls", "tools": [{"name": "f", "parameters": {...}}],
//    "parallel": true}   (Qwen's <tool_call> blocks; at least one call)
#ifndef TPSERVE_STRUCTURED_SPEC_H_
#define TPSERVE_STRUCTURED_SPEC_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "structured/grammar.h"
#include "structured/json_schema.h"

namespace tpserve::structured {

std::string JsonSchemaSpec(const nlohmann::ordered_json& schema);
std::string JsonObjectSpec();
std::string RegexSpec(std::string_view pattern);
std::string ChoiceSpec(const std::vector<std::string>& choices);
// One tool: its function name and parameters schema.
struct ToolSpec {
  std::string name;
  nlohmann::ordered_json parameters;
};
std::string ToolCallsSpec(const std::vector<ToolSpec>& tools, bool parallel);

// Compiles a spec. InvalidArgument for a malformed spec, an unsupported or
// invalid schema or regex (the message names the keyword or feature).
absl::StatusOr<Grammar> GrammarFromSpec(std::string_view spec,
                                        const JsonGrammarOptions& options = {});

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_SPEC_H_
