#include "structured/spec.h"

#include <gtest/gtest.h>

#include "structured/grammar_cache.h"
#include "structured/testing.h"

namespace tpserve::structured {
namespace {

using testing::Matches;

Grammar FromSpec(const std::string& spec) {
  auto g = GrammarFromSpec(spec);
  EXPECT_TRUE(g.ok()) << spec << ": " << g.status();
  return g.ok() ? std::move(*g) : Grammar();
}

TEST(SpecTest, EveryKind) {
  Grammar schema = FromSpec(JsonSchemaSpec({{"type", "integer"}}));
  EXPECT_TRUE(Matches(schema, "12"));
  EXPECT_FALSE(Matches(schema, "\"12\""));
  Grammar object = FromSpec(JsonObjectSpec());
  EXPECT_TRUE(Matches(object, "{\"a\": 1}"));
  Grammar regex = FromSpec(RegexSpec("[0-9]{3}"));
  EXPECT_TRUE(Matches(regex, "123"));
  EXPECT_FALSE(Matches(regex, "12"));
  Grammar choice = FromSpec(ChoiceSpec({"yes", "no", "maybe so"}));
  EXPECT_TRUE(Matches(choice, "maybe so"));
  EXPECT_FALSE(Matches(choice, "\"yes\""));
}

TEST(SpecTest, ToolCallsInQwenFormat) {
  const nlohmann::ordered_json weather = {
      {"type", "object"},
      {"properties", {{"city", {{"type", "string"}}}, {"days", {{"type", "integer"}, {"minimum", 1}}}}},
      {"required", {"city"}}};
  const std::vector<ToolSpec> tools = {{"get_weather", weather}, {"now", nullptr}};
  const std::string one = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 2}}\n</tool_call>";
  const std::string two = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  std::vector<ToolSpec> with_params = tools;
  with_params[1].parameters = {{"type", "object"}, {"additionalProperties", true}};
  Grammar single = FromSpec(ToolCallsSpec(with_params, /*parallel=*/false));
  EXPECT_TRUE(Matches(single, one));
  EXPECT_TRUE(Matches(single, two));
  EXPECT_FALSE(Matches(single, one + "\n" + two));
  EXPECT_FALSE(Matches(single, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 2}}\n</tool_call>"));
  EXPECT_FALSE(Matches(single, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Matches(single, ""));
  Grammar parallel = FromSpec(ToolCallsSpec(with_params, /*parallel=*/true));
  EXPECT_TRUE(Matches(parallel, one + "\n" + two + "\n" + one));
}

TEST(SpecTest, Errors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nope", "not a JSON object"},
      {R"({"type": "xml"})", "unknown type 'xml'"},
      {R"({"type": "regex"})", "needs a string 'pattern'"},
      {RegexSpec("(a"), "missing ')'"},
      {R"({"type": "choice", "choices": []})", "non-empty 'choices'"},
      {R"({"type": "json_schema"})", "needs 'schema'"},
      {JsonSchemaSpec({{"type", "object"}, {"patternProperties", nlohmann::ordered_json::object()}}),
       "unsupported keyword 'patternProperties'"},
      {ToolCallsSpec({{"f", {{"type", "string"}, {"format", "uri"}}}}, false), "tool 'f' parameters"},
  };
  for (const auto& [spec, want] : cases) {
    auto g = GrammarFromSpec(spec);
    ASSERT_FALSE(g.ok()) << spec;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(g.status().message().find(want), std::string::npos) << spec << ": " << g.status().message();
  }
}

TEST(GrammarCacheTest, SharesAndEvicts) {
  GrammarCache cache(testing::SmallVocab({"a", "b"}), {}, /*capacity=*/2);
  auto a1 = cache.Get(RegexSpec("a+"));
  auto a2 = cache.Get(RegexSpec("a+"));
  ASSERT_TRUE(a1.ok() && a2.ok());
  EXPECT_EQ(a1->get(), a2->get());
  ASSERT_TRUE(cache.Get(RegexSpec("b+")).ok());
  ASSERT_TRUE(cache.Get(RegexSpec("a+")).ok());  // a+ is now the most recent
  ASSERT_TRUE(cache.Get(RegexSpec("ab")).ok());   // evicts b+
  auto a3 = cache.Get(RegexSpec("a+"));
  EXPECT_EQ(a1->get(), a3->get());
  EXPECT_FALSE(cache.Get(RegexSpec("(")).ok());
  auto m = cache.NewMatcher(RegexSpec("ab"));
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE((*m)->AcceptToken(0));
  EXPECT_TRUE((*m)->AcceptToken(1));
  EXPECT_TRUE((*m)->IsComplete());
}

}  // namespace
}  // namespace tpserve::structured
