// Strings, numbers, formats and the any-value rules of the JSON Schema front end.
#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "structured/json_number.h"
#include "structured/json_schema_converter.h"
#include "structured/regex.h"

namespace tpserve::structured {
namespace {

// Formats as regexes over the string body (none needs escaping in JSON).
// Dates are month-aware (Feb has 28 days here), as validators check them.
constexpr char kDate[] =
    "[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|"
    "02-(0[1-9]|1[0-9]|2[0-8]))";
constexpr char kTime[] =
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
constexpr char kUuid[] =
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
// Email within RFC 5321's limits, so a model cannot write one forever (an
// unbounded local part kept a random-weight model writing until max_tokens):
// a local part of 1-3 dot-separated atoms of <= 20 characters (<= 62 in
// all), then 1-3 domain labels of <= 63 characters that neither start nor
// end with '-' (as validators check), then an alphabetic TLD of 2-63.
constexpr char kEmail[] =
    "[a-zA-Z0-9_%+-]{1,20}(\\.[a-zA-Z0-9_%+-]{1,20}){0,2}@"
    "([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.){1,3}[a-zA-Z]{2,63}";
constexpr char kIpv4Octet[] = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

// A bound as an integer: the smallest (lower) or largest (upper) integer
// allowed by it; nullopt if absent.
absl::StatusOr<std::optional<int64_t>> IntegerBound(const Json& schema, bool lower,
                                                    const std::string& path) {
  std::optional<double> inclusive, exclusive;
  const char* inc_key = lower ? "minimum" : "maximum";
  const char* exc_key = lower ? "exclusiveMinimum" : "exclusiveMaximum";
  for (const char* key : {inc_key, exc_key}) {
    if (!schema.contains(key)) continue;
    const Json& v = schema[key];
    if (v.is_boolean()) {
      return SchemaError(path, absl::StrCat("boolean '", key, "' (draft 4) is not supported"));
    }
    if (!v.is_number()) return SchemaError(path, absl::StrCat("'", key, "' must be a number"));
    (key == inc_key ? inclusive : exclusive) = v.get<double>();
  }
  std::optional<int64_t> out;
  auto tighten = [&](double v) {
    v = std::clamp(v, -1e18, 1e18);
    const int64_t i = static_cast<int64_t>(v);
    if (!out || (lower ? i > *out : i < *out)) out = i;
  };
  if (inclusive) tighten(lower ? std::ceil(*inclusive) : std::floor(*inclusive));
  if (exclusive) tighten(lower ? std::floor(*exclusive) + 1 : std::ceil(*exclusive) - 1);
  return out;
}

}  // namespace

ExprId JsonSchemaConverter::StringBody() {
  std::vector<CodepointRange> plain = ComplementRanges({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
  const ExprId hex = b_->Alt({b_->ByteRange('0', '9'), b_->ByteRange('a', 'f'), b_->ByteRange('A', 'F')});
  const ExprId escape =
      b_->Seq({b_->Literal("\\"), b_->Alt({b_->Codepoints({{'"', '"'}, {'\\', '\\'}, {'/', '/'},
                                                          {'b', 'b'}, {'f', 'f'}, {'n', 'n'},
                                                          {'r', 'r'}, {'t', 't'}}),
                                            b_->Seq({b_->Literal("u"), b_->Repeat(hex, 4, 4)})})});
  return b_->Star(b_->Alt({b_->Codepoints(plain), escape}));
}

RuleId JsonSchemaConverter::StringRule() {
  if (string_ < 0) {
    string_ = b_->AddRule("string");
    b_->SetRule(string_, b_->Seq({b_->Literal("\""), StringBody(), b_->Literal("\"")}));
  }
  return string_;
}

RuleId JsonSchemaConverter::AnyValueRule() {
  if (any_value_ >= 0) return any_value_;
  any_value_ = b_->AddRule("value");
  const ExprId value = b_->Ref(any_value_);
  const RuleId array = b_->AddRule("any array");
  b_->SetRule(array, Bracketed("[", {b_->Seq({value, b_->Star(b_->Seq({Sep(","), value}))})}, true, "]"));
  const ExprId number = b_->Seq({b_->Optional(b_->Literal("-")), IntegerRange(b_, 0, std::nullopt),
                                 b_->Optional(b_->Seq({b_->Literal("."),
                                                       b_->Repeat(b_->ByteRange('0', '9'), 1, 16)})),
                                 b_->Optional(b_->Seq({b_->Codepoints({{'E', 'E'}, {'e', 'e'}}),
                                                       b_->Optional(b_->Codepoints({{'+', '+'}, {'-', '-'}})),
                                                       b_->Repeat(b_->ByteRange('0', '9'), 1, 3)}))});
  number_ = b_->AddRule("number");
  b_->SetRule(number_, number);
  b_->SetRule(any_value_, b_->Alt({AnyObject(), b_->Ref(array), PlainString(), b_->Ref(number_),
                                   b_->Literal("true"), b_->Literal("false"), b_->Literal("null")}));
  return any_value_;
}

ExprId JsonSchemaConverter::AnyObject() {
  if (any_object_ < 0) {
    any_object_ = b_->AddRule("any object");
    const ExprId value = b_->Ref(AnyValueRule());
    const ExprId member = b_->Seq({PlainString(), Sep(":"), value});
    b_->SetRule(any_object_,
                Bracketed("{", {b_->Seq({member, b_->Star(b_->Seq({Sep(","), member}))})}, true, "}"));
  }
  return b_->Ref(any_object_);
}

absl::StatusOr<ExprId> JsonSchemaConverter::Format(const std::string& format, const std::string& path) {
  std::string re;
  if (format == "date") {
    re = kDate;
  } else if (format == "time") {
    re = kTime;
  } else if (format == "date-time") {
    re = absl::StrCat(kDate, "T", kTime);
  } else if (format == "uuid") {
    re = kUuid;
  } else if (format == "email") {
    re = kEmail;
  } else if (format == "ipv4") {
    re = absl::StrCat(kIpv4Octet, "(\\.", kIpv4Octet, "){3}");
  } else {
    return SchemaError(path, absl::StrCat("unsupported keyword 'format' value '", format, "'"));
  }
  return AddRegex(b_, re);
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertString(const Json& schema, const std::string& path) {
  const bool has_length = schema.contains("minLength") || schema.contains("maxLength");
  const ExprId quote = b_->Literal("\"");
  if (schema.contains("format") || schema.contains("pattern")) {
    const char* key = schema.contains("format") ? "format" : "pattern";
    if (has_length || (schema.contains("format") && schema.contains("pattern"))) {
      return SchemaError(path, absl::StrCat("unsupported keyword combination: '", key,
                                            "' with 'pattern'/'minLength'/'maxLength'"));
    }
    if (!schema[key].is_string()) return SchemaError(path, absl::StrCat("'", key, "' must be a string"));
    const std::string value = schema[key].get<std::string>();
    ExprId body;
    if (schema.contains("format")) {
      TP_ASSIGN_OR_RETURN(body, Format(value, path));
    } else {
      auto re = AddRegex(b_, value, RegexOptions{.search = true, .json_string = true});
      if (!re.ok()) return SchemaError(path + "/pattern", std::string(re.status().message()));
      body = *re;
    }
    return AsRule(absl::StrCat("string ", path), b_->Seq({quote, body, quote}));
  }
  if (!has_length) return PlainString();
  auto read = [&](const char* key, int64_t fallback) -> absl::StatusOr<int32_t> {
    if (!schema.contains(key)) return static_cast<int32_t>(fallback);
    const Json& v = schema[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000) {
      return SchemaError(path, absl::StrCat("'", key, "' must be an integer in [0, 100000]"));
    }
    return static_cast<int32_t>(v.get<int64_t>());
  };
  TP_ASSIGN_OR_RETURN(const int32_t min, read("minLength", 0));
  TP_ASSIGN_OR_RETURN(const int32_t max, read("maxLength", GrammarBuilder::kUnbounded));
  if (max != GrammarBuilder::kUnbounded && max < min) return SchemaError(path, "'maxLength' < 'minLength'");
  const ExprId ch = CharsetExpr(b_, {{0, GrammarBuilder::kMaxCodepoint}}, /*json_string=*/true);
  return AsRule(absl::StrCat("string ", path), b_->Seq({quote, b_->Repeat(ch, min, max), quote}));
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertNumber(const Json& schema, bool integer,
                                                          const std::string& path) {
  TP_ASSIGN_OR_RETURN(const std::optional<int64_t> lo, IntegerBound(schema, /*lower=*/true, path));
  TP_ASSIGN_OR_RETURN(const std::optional<int64_t> hi, IntegerBound(schema, /*lower=*/false, path));
  if (lo && hi && *lo > *hi) {
    return SchemaError(path, integer ? "no integer lies within the bounds"
                                     : "the bounds hold no integer (unsupported for numbers)");
  }
  if (!lo && !hi) {
    if (!integer) {
      AnyValueRule();  // defines the shared number rule
      return b_->Ref(number_);
    }
    if (integer_ < 0) {
      integer_ = b_->AddRule("integer");
      b_->SetRule(integer_, IntegerRange(b_, std::nullopt, std::nullopt));
    }
    return b_->Ref(integer_);
  }
  const ExprId ints = IntegerRange(b_, lo, hi);
  if (integer) return AsRule(absl::StrCat("integer ", path), ints);
  // Fractions only where they stay in range: k.ddd lies in [k, k+1), so
  // k >= max(lo, 0) and k + 1 <= hi. Negative fractions are left out.
  std::vector<ExprId> alts = {ints};
  // k.000 equals k, so k obeys the integer lower bound; k.999 < k + 1, so
  // k + 1 <= the upper bound, inclusive or not.
  const int64_t k_lo = std::max<int64_t>(lo.value_or(0), 0);
  std::optional<int64_t> k_hi;
  for (const char* key : {"maximum", "exclusiveMaximum"}) {
    if (!schema.contains(key)) continue;
    const int64_t k = static_cast<int64_t>(std::floor(std::clamp(schema[key].get<double>(), -1e18, 1e18))) - 1;
    k_hi = k_hi ? std::min(*k_hi, k) : k;
  }
  if (!k_hi || *k_hi >= k_lo) {
    alts.push_back(b_->Seq({IntegerRange(b_, k_lo, k_hi), b_->Literal("."),
                            b_->Repeat(b_->ByteRange('0', '9'), 1, 16)}));
  }
  return AsRule(absl::StrCat("number ", path), b_->Alt(std::move(alts)));
}

}  // namespace tpserve::structured
