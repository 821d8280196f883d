#include "structured/spec.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "structured/json_schema_converter.h"
#include "structured/regex.h"

namespace tpserve::structured {
namespace {

absl::Status SpecError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("structured output spec: ", what));
}

// <tool_call>\n{"name": "<name>", "arguments": <schema>}\n</tool_call>, as
// Qwen's chat template asks the model to write (gateway/tool_calls.h parses it).
absl::StatusOr<ExprId> ToolCallExpr(GrammarBuilder* b, const JsonGrammarOptions& options,
                                    const Json& tools) {
  if (!tools.is_array() || tools.empty()) return SpecError("'tools' must be a non-empty array");
  std::vector<ExprId> calls;
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& tool = tools[i];
    if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) {
      return SpecError("every tool needs a string 'name'");
    }
    const std::string name = tool["name"].get<std::string>();
    // Each tool's parameters is its own document: its $refs resolve in it.
    static const Json kAnyObject = Json{{"type", "object"}, {"additionalProperties", true}};
    const Json& params = tool.contains("parameters") ? tool["parameters"] : kAnyObject;
    JsonSchemaConverter converter(b, options, &params);
    auto args = converter.Convert(params, "#");
    if (!args.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tool '", name, "' parameters: ", args.status().message()));
    }
    calls.push_back(b->Seq({b->Literal(absl::StrCat("<tool_call>\n{\"name\": ", Json(name).dump(),
                                                    ", \"arguments\": ")),
                            *args, b->Literal("}\n</tool_call>")}));
  }
  return b->Alt(std::move(calls));
}

}  // namespace

std::string JsonSchemaSpec(const nlohmann::ordered_json& schema) {
  return Json{{"type", "json_schema"}, {"schema", schema}}.dump();
}
std::string JsonObjectSpec() { return Json{{"type", "json_object"}}.dump(); }
std::string RegexSpec(std::string_view pattern) {
  return Json{{"type", "regex"}, {"pattern", std::string(pattern)}}.dump();
}
std::string ChoiceSpec(const std::vector<std::string>& choices) {
  return Json{{"type", "choice"}, {"choices", choices}}.dump();
}
std::string ToolCallsSpec(const std::vector<ToolSpec>& tools, bool parallel) {
  Json list = Json::array();
  for (const ToolSpec& t : tools) {
    Json tool = {{"name", t.name}};
    if (!t.parameters.is_null()) tool["parameters"] = t.parameters;
    list.push_back(std::move(tool));
  }
  return Json{{"type", "tool_calls"}, {"tools", list}, {"parallel", parallel}}.dump();
}

absl::StatusOr<Grammar> GrammarFromSpec(std::string_view spec, const JsonGrammarOptions& options) {
  const Json parsed = Json::parse(spec.begin(), spec.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("type") ||
      !parsed["type"].is_string()) {
    return SpecError("not a JSON object with a string 'type'");
  }
  const std::string type = parsed["type"].get<std::string>();
  if (type == "json_schema") {
    if (!parsed.contains("schema")) return SpecError("json_schema needs 'schema'");
    return JsonSchemaGrammarFromJson(parsed["schema"], options);
  }
  if (type == "json_object") return JsonObjectGrammar(options);
  GrammarBuilder b;
  if (type == "regex") {
    if (!parsed.contains("pattern") || !parsed["pattern"].is_string()) {
      return SpecError("regex needs a string 'pattern'");
    }
    TP_ASSIGN_OR_RETURN(ExprId e, AddRegex(&b, parsed["pattern"].get<std::string>()));
    b.SetRule(b.root(), e);
  } else if (type == "choice") {
    const Json& choices = parsed.contains("choices") ? parsed["choices"] : Json();
    if (!choices.is_array() || choices.empty()) return SpecError("choice needs a non-empty 'choices' array");
    std::vector<ExprId> alts;
    for (const Json& c : choices) {
      if (!c.is_string()) return SpecError("choices must be strings");
      alts.push_back(b.Literal(c.get<std::string>()));
    }
    b.SetRule(b.root(), b.Alt(std::move(alts)));
  } else if (type == "tool_calls") {
    const Json& tools = parsed.contains("tools") ? parsed["tools"] : Json();
    TP_ASSIGN_OR_RETURN(ExprId call, ToolCallExpr(&b, options, tools));
    const bool parallel = parsed.value("parallel", false);
    b.SetRule(b.root(), parallel ? b.Seq({call, b.Star(b.Seq({b.Literal("\n"), call}))}) : call);
  } else {
    return SpecError(absl::StrCat("unknown type '", type, "'"));
  }
  return CompileGrammar(b, options.limits);
}

}  // namespace tpserve::structured
