#include "structured/json_schema.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "structured/testing.h"

namespace tpserve::structured {
namespace {

using testing::IsPrefix;
using testing::Matches;

struct Case {
  const char* schema;
  std::vector<const char*> valid;
  std::vector<const char*> invalid;
};

Grammar Compile(const char* schema, JsonGrammarOptions opt = {}) {
  auto g = JsonSchemaGrammar(schema, opt);
  EXPECT_TRUE(g.ok()) << schema << ": " << g.status();
  return g.ok() ? std::move(*g) : Grammar();
}

TEST(JsonSchemaTest, GoldenDocuments) {
  const std::vector<Case> cases = {
      {R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]})",
       {R"({"name": "Ann", "age": 31})", R"({"name":"A\"b\u00e9","age":-2})", "{\n  \"name\": \"\",\n  \"age\": 0\n}"},
       {R"({"age": 31, "name": "Ann"})", R"({"name": "Ann"})", R"({"name": "Ann", "age": 3.5})",
        R"({"name": "Ann", "age": 1, "x": 1})", R"({"name": 1, "age": 1})", R"({"name": "Ann", "age": 01})"}},
      {R"({"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"type": "number"}}})",
       {"{}", R"({"a": true})", R"({"b": null, "c": -1.5e3})", R"({"a": false, "b": null, "c": 0})"},
       {R"({"b": null, "a": true})", R"({,"a": true})", R"({"a": true,})", R"({"c": 1.})"}},
      {R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}})",
       {R"({"a": 1, "x": "y", "z": ""})", R"({"x": "y"})", "{}"},
       {R"({"x": 1})"}},
      {R"({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 12}, "minItems": 2, "maxItems": 3})",
       {"[1, 12]", "[3,4,5]", "[ 1 ,\n 2 ]"},
       {"[]", "[1]", "[1,2,3,4]", "[0, 1]", "[13, 1]", "[1, 2,]"}},
      {R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})",
       {"[]", R"(["a"])", R"(["a", 1])"},
       {R"([1])", R"(["a", 1, 2])"}},
      {R"({"enum": ["red", "green", 3, null, {"k": [1]}]})",
       {R"("red")", R"("green")", "3", "null", R"({"k":[1]})"},
       {R"("blue")", "4", R"({"k": [1]})"}},
      {R"({"const": "fixed"})", {R"("fixed")"}, {R"("other")"}},
      {R"({"type": "string", "minLength": 2, "maxLength": 3})",
       {R"("ab")", R"("abc")", "\"\xE4\xB8\xAD\xE6\x96\x87\"", R"("a\"")", R"("\n\t")"},
       {R"("a")", R"("abcd")", R"("")"}},
      {R"({"type": "string", "pattern": "^[A-Z]{2}-\\d+$"})",
       {R"("AB-1")", R"("XY-123")"},
       {R"("ab-1")", R"("AB-")", R"(" AB-1")"}},
      {R"({"type": "string", "pattern": "o+"})", {R"("foo")", R"("o")"}, {R"("fa")"}},
      {R"({"type": "string", "format": "date-time"})",
       {R"("2024-02-28T13:45:00Z")", R"("1999-12-31T23:59:59.123+05:30")"},
       {R"("2024-02-30T13:45:00Z")", R"("2024-13-01T00:00:00Z")", R"("2024-01-01 00:00:00Z")"}},
      {R"({"type": "string", "format": "uuid"})",
       {R"("123e4567-e89b-12d3-a456-426614174000")"}, {R"("123e4567e89b12d3a456426614174000")"}},
      {R"({"type": "string", "format": "email"})",
       {R"("a.b+c@ex-ample.co")", R"("x@a.b.example.org")", R"("abcdefghij0123456789@b.cc")"},
       // Refused: no domain dot, no local part, a label ending in '-', a
       // 21-character atom, four domain labels before the TLD.
       {R"("a@b")", R"("@b.com")", R"("a@b-.com")", R"("abcdefghij0123456789x@b.cc")",
        R"("a@b.c.d.e.com")"}},
      {R"({"type": "string", "format": "ipv4"})", {R"("192.168.0.255")"}, {R"("256.1.1.1")", R"("1.2.3")"}},
      {R"({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]})",
       {"5", R"("x")"}, {R"("xy")", "true"}},
      {R"({"type": ["integer", "null"]})", {"-3", "null"}, {"\"3\""}},
      {R"({"type": "number", "minimum": 0, "exclusiveMaximum": 10})",
       {"0", "9", "9.99", "0.5"}, {"10", "-1", "-0.5", "1e2"}},
      {R"({"type": "integer", "exclusiveMinimum": -2.5, "maximum": 3})", {"-2", "3"}, {"-3", "4"}},
      {R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
          "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"]}},
          "$ref": "#/$defs/node"})",
       {R"({"v": 1, "next": null})", R"({"v": 1, "next": {"v": 2, "next": {"v": 3, "next": null}}})"},
       {R"({"v": 1})", R"({"v": 1, "next": {"v": 2}})"}},
      {R"({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["tags"], "additionalProperties": false, "title": "t", "description": "d"})",
       {R"({"tags": []})", R"({"tags": ["a", "b"]})"}, {R"({"tags": [1]})", "{}"}},
      {"true", {"1", R"({"a": [true, null, "x", -0.5e-3]})", R"("s")"}, {"tru", "{a: 1}"}},
      {R"({"allOf": [{"type": "boolean"}]})", {"true"}, {"1"}},
      {R"({"required": ["id"]})", {R"({"id": [1]})"}, {"{}"}},
  };
  for (const Case& c : cases) {
    Grammar g = Compile(c.schema);
    for (const char* doc : c.valid) EXPECT_TRUE(Matches(g, doc)) << c.schema << "\n  valid: " << doc;
    for (const char* doc : c.invalid) EXPECT_FALSE(Matches(g, doc)) << c.schema << "\n  invalid: " << doc;
  }
}

TEST(JsonSchemaTest, WhitespaceIsBounded) {
  Grammar g = Compile(R"({"type": "object", "properties": {"a": {"type": "integer"}}})",
                      JsonGrammarOptions{.max_whitespace = 2});
  EXPECT_TRUE(Matches(g, "{  \"a\":  1  }"));
  EXPECT_FALSE(IsPrefix(g, "{   "));
  Grammar compact = Compile(R"({"type": "array"})", JsonGrammarOptions{.max_whitespace = 0});
  EXPECT_TRUE(Matches(compact, "[1,[]]"));
  EXPECT_FALSE(Matches(compact, "[1, []]"));
}

TEST(JsonSchemaTest, NonStrictObjectsAllowExtraKeys) {
  const char* schema = R"({"type": "object", "properties": {"a": {"type": "integer"}}})";
  EXPECT_FALSE(Matches(Compile(schema), R"({"a": 1, "b": 2})"));
  EXPECT_TRUE(Matches(Compile(schema, JsonGrammarOptions{.strict_objects = false}), R"({"a": 1, "b": 2})"));
}

TEST(JsonObjectTest, AnyObject) {
  auto g = JsonObjectGrammar();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(Matches(*g, "{}"));
  EXPECT_TRUE(Matches(*g, R"({"a": {"b": [1, 2.5, "c", {"d": null}]}, "e": false})"));
  EXPECT_FALSE(Matches(*g, "[]"));
  EXPECT_FALSE(Matches(*g, "\"x\""));
  EXPECT_FALSE(Matches(*g, R"({"a": 1,})"));
}

TEST(JsonSchemaTest, ErrorsNameTheKeyword) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {R"({"type": "object", "minProperties": 1})", "unsupported keyword 'minProperties'"},
      {R"({"type": "object", "properties": {"x": {"type": "string", "contentEncoding": "base64"}}})",
       "#/properties/x: unsupported keyword 'contentEncoding'"},
      {R"({"type": "array", "uniqueItems": true})", "unsupported keyword 'uniqueItems'"},
      {R"({"allOf": [{"type": "string"}, {"maxLength": 2}]})", "'allOf' with more than one schema"},
      {R"({"type": "string", "format": "uri"})", "'format' value 'uri'"},
      {R"j({"type": "string", "pattern": "a(?=b)"})j", "lookaround"},
      {R"({"type": "string", "pattern": "[a-"})", "#/pattern"},
      {R"({"type": "strin"})", "unknown type 'strin'"},
      {R"({"$ref": "#/$defs/missing"})", "points nowhere"},
      {R"({"$ref": "http://x/s.json"})", "only local"},
      {R"({"type": "string", "maxLength": 1, "minLength": 2})", "'maxLength' < 'minLength'"},
      {R"({"type": "integer", "minimum": 5, "maximum": 4})", "no integer"},
      {R"({"type": "integer", "minimum": 1, "exclusiveMinimum": true})", "draft 4"},
      {R"({"enum": []})", "non-empty"},
      {R"([1, 2])", "object or a boolean"},
      {"false", "matches nothing"},
      {"{not json", "not valid JSON"},
  };
  for (const auto& [schema, want] : cases) {
    auto g = JsonSchemaGrammar(schema);
    ASSERT_FALSE(g.ok()) << schema;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << schema;
    EXPECT_NE(g.status().message().find(want), std::string::npos)
        << schema << ": " << g.status().message();
  }
}

}  // namespace
}  // namespace tpserve::structured
