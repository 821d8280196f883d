#include "common/text/jinja.h"

#include <gtest/gtest.h>

#include <chrono>

#include "common/text/jinja_budget.h"
#include "common/text/jinja_strings.h"

namespace tpserve::text::jinja {
namespace {

// Renders `src` with `vars` (JSON object) or returns the error text.
std::string R(const std::string& src, const char* vars = "{}") {
  auto t = Template::Parse(src);
  if (!t.ok()) return "ERR " + std::string(t.status().message());
  auto v = FromJson(nlohmann::ordered_json::parse(vars));
  if (!v.ok()) return "ERR vars";
  // No deadline here: each limit under test must be the one that trips, however
  // slow the machine (RenderStopsAtItsDeadline tests the deadline).
  RenderLimits limits;
  limits.max_duration = absl::InfiniteDuration();
  auto out = t->Render(v->dict(), limits);
  if (!out.ok()) return "ERR " + std::string(out.status().message());
  return *out;
}

TEST(JinjaTest, ExpressionsAndOutput) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ 1 / 2 }}"), "7|3|-4|1|1024|0.5");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none }}|{{ 'x' + 'y' }}|{{ [1] + [2] }}"), "a1None|xy|[1, 2]");
  EXPECT_EQ(R("{{ true }} {{ none }} {{ 1.0 }} {{ undefined_var }}."), "True None 1.0 .");
  EXPECT_EQ(R("{{ 'yes' if x else 'no' }}{{ 'only' if false }}", R"({"x": 1})"), "yes");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ not 0 and 1 or 2 }}"), "True True True 1");
  EXPECT_EQ(R("{{ {'a': 1, 'b': [1, 'x']} }}"), "{'a': 1, 'b': [1, 'x']}");
  EXPECT_EQ(R("{{ (1, 2) }}{{ (1,) }}{{ {'k': 1}.items()|list }}{{ (1, 2) == [1, 2] }}"), "(1, 2)(1,)[('k', 1)]False");
  EXPECT_EQ(R("{{ \"it's\" }}|{{ ['it\\'s'] }}|{{ 'a\\nb' }}"), "it's|[\"it's\"]|a\nb");
}

TEST(JinjaTest, SubscriptsAndSlices) {
  const char* v = R"({"l": [1, 2, 3, 4], "s": "héllo", "d": {"k": "v"}})";
  EXPECT_EQ(R("{{ l[-1] }}{{ l[::-1] }}{{ l[1:3] }}{{ l[:-1] }}{{ l[::2] }}", v), "4[4, 3, 2, 1][2, 3][1, 2, 3][1, 3]");
  EXPECT_EQ(R("{{ s[1] }}{{ s[::-1] }}{{ s|length }}{{ d.k }}{{ d['k'] }}{{ d.missing is defined }}", v),
            "éolléh5vvFalse");
  EXPECT_EQ(R("{{ l[10] is defined }}", v), "False");
}

TEST(JinjaTest, StringMethods) {
  const char* v = R"({"s": "  <think>a</think>\nrest  "})";
  EXPECT_EQ(R("{{ s.strip() }}|{{ s.split('</think>')[-1].lstrip('\\n') }}|{{ s.startswith('  <') }}", v),
            "<think>a</think>\nrest|rest  |True");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'x'.upper() }}{{ 'AbC'.lower() }}"),
            "['a', 'b', '', 'c']['a', 'b']Xabc");
  EXPECT_EQ(R("{{ 'aaa'.replace('a', 'b', 2) }}{{ 'xxhixx'.strip('x') }}{{ 'ab'.endswith(('z', 'b')) }}"), "bbahiTrue");
  EXPECT_EQ(R("{{ '{} and {}'.format(1, 'x') }}|{{ 'hello world'.title() }}|{{ 'abc'.find('c') }}"), "1 and x|Hello World|2");
}

TEST(JinjaTest, Filters) {
  const char* v = R"({"t": {"name": "f", "args": {"b": 1, "a": "é\"\n"}}, "l": [3, 1, 2], "u": [{"n": "x"}, {"n": "y"}]})";
  EXPECT_EQ(R("{{ t | tojson }}", v), R"({"name": "f", "args": {"b": 1, "a": "é\"\n"}})");
  EXPECT_EQ(R("{{ t.args | tojson(indent=2) }}", v), "{\n  \"b\": 1,\n  \"a\": \"é\\\"\\n\"\n}");
  EXPECT_EQ(R("{{ t.args | tojson(sort_keys=true) }}", v), R"({"a": "é\"\n", "b": 1})");
  EXPECT_EQ(R("{{ l|length }}{{ l|sort }}{{ l|join('-') }}{{ l|first }}{{ l|last }}{{ l|max }}{{ l|sum }}", v),
            "3[1, 2, 3]3-1-23236");
  EXPECT_EQ(R("{{ u|map(attribute='n')|join(',') }}|{{ u|selectattr('n', 'equalto', 'y')|list }}", v),
            "x,y|[{'n': 'y'}]");
  EXPECT_EQ(R("{{ x|default('d') }}{{ ''|default('e', true) }}{{ '  t  '|trim }}{{ 'ab'|upper }}"), "detAB");
  EXPECT_EQ(R("{% for k, v in t.args|items %}{{ k }}={{ v|string|length }};{% endfor %}", v), "b=1;a=3;");
  EXPECT_EQ(R("{{ 'a\nb'|indent(2) }}|{{ [1, 1, 2]|unique|list }}|{{ '3'|int + 1 }}|{{ 2.5|round }}"), "a\n  b|[1, 2]|4|3.0");
}

TEST(JinjaTest, Tests) {
  EXPECT_EQ(R("{{ x is none }}{{ y is defined }}{{ 's' is string }}{{ 1 is number }}{{ {} is mapping }}",
              R"({"x": null})"), "TrueFalseTrueTrueTrue");
  EXPECT_EQ(R("{{ false is false }}{{ 0 is false }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ x is not none }}"),
            "TrueFalseTrueTrueTrue");
}

TEST(JinjaTest, LoopsAndScoping) {
  EXPECT_EQ(R("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.revindex0 }},{% endfor %}"),
            "1TrueFalse2,2FalseFalse1,3FalseTrue0,");
  EXPECT_EQ(R("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(R("{% for x in range(10) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}"),
            "02");
  // `set` inside a loop does not leak out; a namespace does.
  EXPECT_EQ(R("{% set a = 1 %}{% set ns = namespace(b=1) %}{% for x in [5] %}{% set a = x %}{% set ns.b = x %}{% endfor %}{{ a }}{{ ns.b }}"),
            "15");
  EXPECT_EQ(R("{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set c %}cap{{ a }}{% endset %}{{ c }}"), "21cap1");
  EXPECT_EQ(R("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"), "xy");
}

TEST(JinjaTest, MacrosAndCallBlocks) {
  EXPECT_EQ(R("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('a') }}/{{ greet('b', p='Yo') }}"),
            "Hi a/Yo b");
  EXPECT_EQ(R("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(R("{% filter upper %}abc{% endfilter %}{% raw %}{{ x }}{% endraw %}"), "ABC{{ x }}");
  EXPECT_EQ(R("  {%- raw -%}  {{ y }}  {%- endraw -%}  !"), "{{ y }}!");
}

TEST(JinjaTest, WhitespaceControl) {
  // trim_blocks and lstrip_blocks, as transformers configures Jinja.
  EXPECT_EQ(R("{% if true %}\n  x\n{% endif %}\ny"), "  x\ny");
  EXPECT_EQ(R("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc");
  EXPECT_EQ(R("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(R("a\n{%- if true -%}\n  b\n{%- endif %}"), "ab");
  EXPECT_EQ(R("x {# comment #}\ny"), "x y");
  EXPECT_EQ(R("{{ 'v' }}\nz"), "v\nz");  // no trimming after variables
  // One trailing newline of the template is dropped and \r\n becomes \n, as in jinja2.
  EXPECT_EQ(R("\n{% if true %}\n\n{% endif %}\n\n"), "\n\n");
  EXPECT_EQ(R("a\r\nb\n"), "a\nb");
}

TEST(JinjaTest, SyntaxErrorsHaveLineAndColumn) {
  EXPECT_EQ(R("a\n{% if x %}b"), "ERR template syntax error at 2:12: unexpected end of template, expected 'elif'");
  EXPECT_EQ(R("{{ 1 + }}"), "ERR template syntax error at 1:8: unexpected '}}'");
  EXPECT_EQ(R("\n  {% frobnicate %}"), "ERR template syntax error at 2:6: unsupported or unexpected tag 'frobnicate'");
  EXPECT_EQ(R("{{ 'abc }}"), "ERR template syntax error at 1:4: unterminated string literal");
  EXPECT_EQ(R("{% for %}{% endfor %}"), "ERR template syntax error at 1:8: expected a name, got '%}'");
  EXPECT_EQ(R("{{ x $ y }}"), "ERR template syntax error at 1:6: unexpected character '$'");
  EXPECT_EQ(R("{% endif %}"), "ERR template syntax error at 1:4: unsupported or unexpected tag 'endif'");
}

TEST(JinjaTest, RuntimeErrorsHaveLineAndColumn) {
  EXPECT_EQ(R("x\n  {{ raise_exception('bad role') }}"), "ERR template error at 2:6: raise_exception: bad role");
  EXPECT_EQ(R("{{ 1 + 'a' }}"), "ERR template error at 1:6: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(R("{{ nope.x.y }}"), "ERR template error at 1:4: undefined value has no attribute 'x'");
  EXPECT_EQ(R("{{ x|nosuch }}"), "ERR template error at 1:6: no filter named 'nosuch'");
  EXPECT_EQ(R("{% for x in none %}{% endfor %}"), "ERR template error at 1:4: 'NoneType' object is not iterable");
  EXPECT_EQ(R("{{ 1 / 0 }}"), "ERR template error at 1:6: division by zero");
  EXPECT_EQ(R("{{ (-9223372036854775807 - 1) // -1 }}"), "ERR template error at 1:31: integer overflow");
  EXPECT_EQ(R("{{ 9223372036854775807 + 1 }}"), "ERR template error at 1:24: integer overflow");
  EXPECT_EQ(R("{{ 10 ** 40 }}"), "ERR template error at 1:7: integer overflow");
  EXPECT_EQ(R("{{ [1][-9223372036854775807] is defined }}{{ 'ab'[9223372036854775807] }}"), "False");
}

TEST(JinjaTest, HostileTemplatesAreBounded) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(R(deep).find("nested too deeply"), std::string::npos);
  std::string deep_blocks;
  for (int i = 0; i < 5000; ++i) deep_blocks += "{% if true %}";
  EXPECT_NE(R(deep_blocks).find("nested too deeply"), std::string::npos);
  EXPECT_NE(R("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("macro recursion deeper than"),
            std::string::npos);
  // A recursive macro whose body is itself deeply nested hits the total depth bound.
  std::string nested_macro = "{% macro g(n) %}";
  for (int i = 0; i < 100; ++i) nested_macro += "{% if true %}";
  nested_macro += "{{ g(n) }}";
  for (int i = 0; i < 100; ++i) nested_macro += "{% endif %}";
  nested_macro += "{% endmacro %}{{ g(0) }}";
  EXPECT_NE(R(nested_macro).find("nested too deeply"), std::string::npos) << R(nested_macro).substr(0, 200);
  EXPECT_NE(R("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}").find("steps"),
            std::string::npos);
  EXPECT_NE(R("{{ range(100000000) }}").find("range too large"), std::string::npos);
  EXPECT_NE(R("{{ 'x' * 100000000 }}").find("repetition too large"), std::string::npos);
  EXPECT_NE(R("{% set s = 'xxxxxxxxxxxxxxxx' * 1000000 %}{% for i in range(10) %}{{ s }}{{ s }}{{ s }}{{ s }}{% endfor %}")
                .find("output exceeded"),
            std::string::npos);
}

// Found by the 2026-12-01 fuzz run (fuzz/corpus/jinja/cycles.txt, utf8.txt):
// a namespace assigned into itself (directly, in a list, or through another
// namespace) made a cycle that Repr recursed into until the stack overflowed
// and that reference counting leaked; invalid UTF-8 in a template's string
// literal made strip (via int) read past the string.
TEST(JinjaTest, NamespaceCyclesAndInvalidUtf8AreRefused) {
  auto has = [](const std::string& out, const char* what) { return out.find(what) != std::string::npos; };
  EXPECT_TRUE(has(R("{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns }}"), "to its own attribute"));
  EXPECT_TRUE(has(R("{% set ns = namespace() %}{% set ns.l = [1, {'k': ns}] %}{{ ns }}"), "to its own attribute"));
  EXPECT_TRUE(has(R("{% set a = namespace() %}{% set b = namespace(y=a) %}{% set a.z = b %}{{ a }}"),
                  "to its own attribute"));
  // Sharing without a cycle is fine.
  EXPECT_EQ(R("{% set a = namespace(v=1) %}{% set b = namespace() %}{% set b.x = a %}{% set b.y = [a, a] %}"
              "{{ b.x.v }}{{ b.y|length }}"),
            "12");
  EXPECT_TRUE(has(R("{{ 'a\xff\xe2\xbf'|int(-1) }}"), "template is not valid UTF-8"));
  EXPECT_TRUE(has(R("{{ 'x' }}\xe2\x82"), "template is not valid UTF-8"));  // truncated at the end
  // Escapes name code points, so they stay valid UTF-8 (U+00E2, U+20AC).
  EXPECT_EQ(R("{{ ' \\xe2\\u20ac '|trim }}"), "\xc3\xa2\xe2\x82\xac");
}

// Found while writing fuzz/jinja_fuzzer.cc: values built without output (a
// namespace string doubled in a loop; one-shot join/replace/indent/tojson
// products) grew without bound, and indent(-1) threw std::length_error.
TEST(JinjaTest, ValueSizeIsBounded) {
  auto has = [](const std::string& out, const char* what) { return out.find(what) != std::string::npos; };
  const std::string doubling =
      "{% set ns = namespace(x='xxxxxxxxxxxxxxxx' * 1000000) %}"
      "{% for i in range(100) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}";
  EXPECT_TRUE(has(R(doubling), "template value too large")) << R(doubling).substr(0, 200);
  EXPECT_TRUE(has(R("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
                  "template value too large"));
  const char* big = R"({"s": "abc", "l": ["x", "y", "z"]})";
  EXPECT_TRUE(has(R("{{ ([s * 5000000] * 100)|join }}", big), "too large"));
  EXPECT_TRUE(has(R("{{ (s * 5000000).replace('', s * 100) }}", big), "replace result too large"));
  EXPECT_TRUE(has(R("{{ (s * 5000000)|replace('a', s * 100) }}", big), "replace result too large"));
  EXPECT_TRUE(has(R("{{ ('a\n' * 1000)|indent(1000000000) }}"), "indent width too large"));
  EXPECT_TRUE(has(R("{{ l|tojson(indent=1000000000) }}", big), "indent too large"));
  // A small list of one shared big string prints big (fuzz run 2 of 2026-12-01: 1.2 GB of repr built
  // before any check); refused before it is built, wherever a value is printed.
  EXPECT_TRUE(has(R("{{ ([s * 200000] * 2000) }}", big), "printed value too large"));
  EXPECT_TRUE(has(R("{{ 'x' ~ ([s * 200000] * 2000) }}", big), "printed value too large"));
  EXPECT_TRUE(has(R("{{ ([s * 200000] * 2000)|string }}", big), "printed value too large"));
  EXPECT_TRUE(has(R("{{ [[s * 200000] * 2000]|join }}", big), "printed value too large"));
  EXPECT_TRUE(has(R("{{ '{}'.format([s * 200000] * 2000) }}", big), "printed value too large"));
  EXPECT_TRUE(has(R("{{ ([s * 200000] * 2000)|upper }}", big), "printed value too large"));
  EXPECT_EQ(R("{{ [s, {'k': l}] }}|{{ 1 ~ [2] }}|{{ l|string }}", big), "['abc', {'k': ['x', 'y', 'z']}]|1[2]|['x', 'y', 'z']");
  EXPECT_EQ(R("{{ 'a\nb'|indent(-1) }}"), "a\nb");
  EXPECT_EQ(R("{{ 'a\nb'|indent(2) }}|{{ 'aXb'.replace('X', '-') }}|{{ l|join('+') }}", big), "a\n  b|a-b|x+y+z");
}

// Each step may copy up to max_value_bytes, and a million steps are allowed:
// without a deadline this template copies 4 TB. It must stop at the deadline.
TEST(JinjaTest, RenderStopsAtItsDeadline) {
  auto t = Template::Parse(
      "{% set s = 'x' * 4000000 %}{% for i in range(1000000) %}{% set c = s ~ i %}{% endfor %}done");
  ASSERT_TRUE(t.ok());
  RenderLimits limits;
  limits.max_duration = absl::Milliseconds(100);
  const auto start = std::chrono::steady_clock::now();
  auto out = t->Render({}, limits);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded) << out.status();
  EXPECT_NE(out.status().message().find("max_duration"), std::string::npos) << out.status();
  // Generous for sanitizer builds on a loaded machine; the copying alone
  // would take hours.
  EXPECT_LT(secs, 3.0);
  // The default is finite, and a normal template is far within it.
  EXPECT_LE(RenderLimits{}.max_duration, absl::Seconds(10));
  EXPECT_EQ(R("{% for i in range(1000) %}{{ i % 10 }}{% endfor %}").size(), 1000u);
}

// The builtins that build a value from a product of their inputs check the
// render's own max_value_bytes while building, not the 64 MiB default: the
// error names the builtin, not the evaluation that received its result.
TEST(JinjaTest, BuiltinsUseTheRenderValueLimit) {
  RenderLimits limits;
  limits.max_value_bytes = 1 << 20;
  const auto render = [&](const std::string& src) {
    auto t = Template::Parse(src);
    if (!t.ok()) return std::string(t.status().message());
    auto out = t->Render({}, limits);
    return out.ok() ? *out : std::string(out.status().message());
  };
  const auto has = [](const std::string& out, const char* what) { return out.find(what) != std::string::npos; };
  EXPECT_TRUE(has(render("{{ (['x' * 1000] * 2000)|join }}"), "join result too large"));
  EXPECT_TRUE(has(render("{{ ','.join(['x' * 1000] * 2000) }}"), "join result too large"));
  EXPECT_TRUE(has(render("{{ ('a' * 600000)|replace('a', 'bb') }}"), "replace result too large"));
  EXPECT_TRUE(has(render("{{ ('a' * 600000).replace('', 'b') }}"), "replace result too large"));
  EXPECT_TRUE(has(render("{{ ('a\n' * 1000)|indent(2000) }}"), "indent result too large"));
  EXPECT_TRUE(has(render("{{ 'a'|indent(2000000) }}"), "indent width too large"));
  EXPECT_TRUE(has(render("{{ (['x' * 1000] * 2000)|tojson }}"), "tojson result too large"));
  EXPECT_TRUE(has(render("{{ (['x' * 1000] * 2000)|join }}"), "RenderLimits::max_value_bytes"));
  // A string iterated as characters: checked before the million values exist.
  EXPECT_TRUE(has(render("{{ ('a' * 100000)|list|length }}"), "list of a string's characters too large"));
  EXPECT_TRUE(has(render("{% for c in 'a' * 100000 %}{% endfor %}"), "list of a string's characters too large"));
  EXPECT_EQ(render("{{ ('a' * 60000)|list|length }}"), "60000");
  // Just under the limit still renders.
  EXPECT_EQ(render("{{ (['x' * 1000] * 1000)|join|length }}"), "1000000");

  // Called directly, a builtin takes the budget it is given.
  RenderBudget small(100, absl::InfiniteDuration());
  EXPECT_EQ(PyReplace(std::string(60, 'a'), "a", "bb", -1, small).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto fits = PyReplace(std::string(40, 'a'), "a", "bb", -1, small);
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(fits->str(), std::string(80, 'b'));
}

TEST(JinjaTest, RandomTemplatesNeverCrash) {
  // Token soup: every result must be a render or an error, never a crash/hang.
  const char* parts[] = {"{%", "%}", "{{", "}}", "{#", "#}", "-", "if", "for", "x", "in", "endif", "endfor",
                         "else", "set", "=", "(", ")", "[", "]", "{", "}", "'s'", "1", ".", "|", "length",
                         "loop", "is", "not", "macro", "endmacro", ",", ":", "~", "+", "*", "range", "\n", " "};
  uint32_t seed = 7;
  int renders = 0, errors = 0;
  for (int t = 0; t < 3000; ++t) {
    std::string src;
    const int n = 1 + (seed % 40);
    for (int i = 0; i < n; ++i) {
      seed = seed * 1664525u + 1013904223u;
      src += parts[(seed >> 8) % (sizeof(parts) / sizeof(parts[0]))];
      src += ' ';
    }
    (R(src, R"({"x": [1, 2]})").starts_with("ERR ") ? errors : renders)++;
  }
  EXPECT_GT(renders, 0);
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace tpserve::text::jinja
