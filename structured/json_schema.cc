#include "structured/json_schema.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "structured/json_schema_converter.h"

namespace tpserve::structured {
namespace {

// Keywords that only annotate: accepted and ignored.
const std::set<std::string>& Annotations() {
  static const auto* k = new std::set<std::string>{
      "title",      "description", "$schema", "$id",       "$comment",   "default",
      "examples",   "deprecated",  "readOnly", "writeOnly", "$defs",      "definitions"};
  return *k;
}

const std::set<std::string>& Supported() {
  static const auto* k = new std::set<std::string>{
      "type",      "properties", "required",  "additionalProperties", "enum",
      "const",     "items",      "prefixItems", "minItems",           "maxItems",
      "minLength", "maxLength",  "pattern",   "format",               "minimum",
      "maximum",   "exclusiveMinimum", "exclusiveMaximum", "anyOf",   "oneOf",
      "allOf",     "$ref"};
  return *k;
}

constexpr int kMaxDepth = 64;

absl::StatusOr<int32_t> NonNegativeInt(const Json& schema, const char* key, int32_t fallback,
                                       const std::string& path) {
  if (!schema.contains(key)) return fallback;
  const Json& v = schema[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000) {
    return SchemaError(path, absl::StrCat("'", key, "' must be an integer in [0, 100000]"));
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

}  // namespace

absl::Status SchemaError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("JSON Schema at ", path, ": ", what));
}

JsonSchemaConverter::JsonSchemaConverter(GrammarBuilder* b, const JsonGrammarOptions& options,
                                         const Json* root)
    : b_(b), options_(options), root_(root) {
  ByteSet space;
  for (char c : {' ', '\t', '\n', '\r'}) space.set(static_cast<uint8_t>(c));
  ws_ = b_->Repeat(b_->Bytes(space), 0, std::max(0, options.max_whitespace));
}

ExprId JsonSchemaConverter::AsRule(const std::string& name, ExprId body) {
  const RuleId r = b_->AddRule(name);
  b_->SetRule(r, body);
  return b_->Ref(r);
}

ExprId JsonSchemaConverter::Bracketed(const char* open, const std::vector<ExprId>& contents,
                                      bool may_be_empty, const char* close) {
  // Empty contents get one whitespace run, not two, to keep the bound.
  std::vector<ExprId> alts;
  if (!contents.empty()) {
    alts.push_back(b_->Seq({b_->Literal(open), Ws(), b_->Alt(contents), Ws(), b_->Literal(close)}));
  }
  if (may_be_empty) alts.push_back(b_->Seq({b_->Literal(open), Ws(), b_->Literal(close)}));
  return b_->Alt(std::move(alts));
}

absl::Status JsonSchemaConverter::CheckKeywords(const Json& schema, const std::string& path) const {
  for (const auto& [key, value] : schema.items()) {
    if (Annotations().count(key) || Supported().count(key)) continue;
    if (key == "uniqueItems" && value == false) continue;
    return SchemaError(path, absl::StrCat("unsupported keyword '", key, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExprId> JsonSchemaConverter::Convert(const Json& schema, const std::string& path) {
  if (schema.is_boolean()) {
    if (schema.get<bool>()) return AnyValue();
    return SchemaError(path, "the schema 'false' matches nothing");
  }
  if (!schema.is_object()) return SchemaError(path, "a schema must be an object or a boolean");
  if (depth_ >= kMaxDepth) return SchemaError(path, "nested more than 64 levels deep");
  TP_RETURN_IF_ERROR(CheckKeywords(schema, path));
  struct DepthGuard {
    int* d;
    ~DepthGuard() { --*d; }
  } guard{&(++depth_)};
  // Keywords that combine with nothing else (but annotations).
  for (const char* alone : {"$ref", "const", "enum", "anyOf", "oneOf", "allOf"}) {
    if (!schema.contains(alone)) continue;
    for (const auto& [key, value] : schema.items()) {
      if (key != alone && !Annotations().count(key) && !(key == "type" && std::string(alone) != "$ref")) {
        return SchemaError(path, absl::StrCat("unsupported keyword '", key, "' alongside '", alone, "'"));
      }
    }
  }
  if (schema.contains("$ref")) {
    if (!schema["$ref"].is_string()) return SchemaError(path, "'$ref' must be a string");
    return ConvertRef(schema["$ref"].get<std::string>(), path);
  }
  if (schema.contains("const")) return b_->Literal(schema["const"].dump());
  if (schema.contains("enum")) {
    const Json& values = schema["enum"];
    if (!values.is_array() || values.empty()) return SchemaError(path, "'enum' must be a non-empty array");
    std::vector<ExprId> alts;
    for (const Json& v : values) alts.push_back(b_->Literal(v.dump()));
    return b_->Alt(std::move(alts));
  }
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    if (!schema.contains(key)) continue;
    const Json& subs = schema[key];
    if (!subs.is_array() || subs.empty()) {
      return SchemaError(path, absl::StrCat("'", key, "' must be a non-empty array"));
    }
    if (std::string(key) == "allOf" && subs.size() != 1) {
      return SchemaError(path, "unsupported keyword 'allOf' with more than one schema");
    }
    std::vector<ExprId> alts;
    for (size_t i = 0; i < subs.size(); ++i) {
      TP_ASSIGN_OR_RETURN(ExprId e, Convert(subs[i], absl::StrCat(path, "/", key, "/", i)));
      alts.push_back(e);
    }
    return b_->Alt(std::move(alts));
  }
  if (schema.contains("type")) {
    const Json& type = schema["type"];
    if (type.is_string()) return ConvertType(schema, type.get<std::string>(), path);
    if (!type.is_array() || type.empty()) return SchemaError(path, "'type' must be a string or a non-empty array");
    std::vector<ExprId> alts;
    for (const Json& t : type) {
      if (!t.is_string()) return SchemaError(path, "'type' entries must be strings");
      TP_ASSIGN_OR_RETURN(ExprId e, ConvertType(schema, t.get<std::string>(), path));
      alts.push_back(e);
    }
    return b_->Alt(std::move(alts));
  }
  // No type: implied by the keywords present, else anything.
  auto has_any = [&](std::initializer_list<const char*> keys) {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return schema.contains(k); });
  };
  if (has_any({"properties", "required", "additionalProperties"})) return ConvertType(schema, "object", path);
  if (has_any({"items", "prefixItems", "minItems", "maxItems"})) return ConvertType(schema, "array", path);
  if (has_any({"minLength", "maxLength", "pattern", "format"})) return ConvertType(schema, "string", path);
  if (has_any({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) {
    return ConvertType(schema, "number", path);
  }
  return AnyValue();
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertRef(const std::string& ref, const std::string& path) {
  auto it = refs_.find(ref);
  if (it != refs_.end()) return b_->Ref(it->second);
  if (ref.empty() || ref[0] != '#') {
    return SchemaError(path, absl::StrCat("only local '$ref's (#/...) are supported, not '", ref, "'"));
  }
  const Json* target = root_;
  if (ref.size() > 1) {
    try {
      target = &root_->at(Json::json_pointer(ref.substr(1)));
    } catch (const std::exception&) {
      return SchemaError(path, absl::StrCat("'$ref' '", ref, "' points nowhere"));
    }
  }
  // The rule exists before its body, so recursive references resolve to it.
  const RuleId rule = b_->AddRule(absl::StrCat("ref ", ref));
  refs_.emplace(ref, rule);
  TP_ASSIGN_OR_RETURN(ExprId body, Convert(*target, ref));
  b_->SetRule(rule, body);
  return b_->Ref(rule);
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertType(const Json& schema, const std::string& type,
                                                        const std::string& path) {
  if (type == "object") return ConvertObject(schema, path);
  if (type == "array") return ConvertArray(schema, path);
  if (type == "string") return ConvertString(schema, path);
  if (type == "number") return ConvertNumber(schema, /*integer=*/false, path);
  if (type == "integer") return ConvertNumber(schema, /*integer=*/true, path);
  if (type == "boolean") return b_->Alt({b_->Literal("true"), b_->Literal("false")});
  if (type == "null") return b_->Literal("null");
  return SchemaError(path, absl::StrCat("unknown type '", type, "'"));
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertObject(const Json& schema, const std::string& path) {
  static const Json kEmpty = Json::object();
  const Json& props = schema.contains("properties") ? schema["properties"] : kEmpty;
  if (!props.is_object()) return SchemaError(path, "'properties' must be an object");
  std::set<std::string> required;
  if (schema.contains("required")) {
    if (!schema["required"].is_array()) return SchemaError(path, "'required' must be an array");
    for (const Json& r : schema["required"]) {
      if (!r.is_string()) return SchemaError(path, "'required' entries must be strings");
      required.insert(r.get<std::string>());
    }
  }
  // (key, value expression, required) in declaration order; the model writes
  // properties in this order.
  std::vector<std::pair<ExprId, bool>> items;
  auto add_property = [&](const std::string& key, ExprId value) {
    items.push_back({b_->Seq({b_->Literal(Json(key).dump()), Sep(":"), value}), required.count(key) > 0});
  };
  for (const auto& [key, sub] : props.items()) {
    TP_ASSIGN_OR_RETURN(ExprId value, Convert(sub, absl::StrCat(path, "/properties/", key)));
    add_property(key, value);
  }
  for (const std::string& key : required) {
    if (!props.contains(key)) add_property(key, AnyValue());
  }
  std::optional<ExprId> extra;  // one additional "key": value pair
  const bool has_additional = schema.contains("additionalProperties");
  if (has_additional ? schema["additionalProperties"] != false : !options_.strict_objects) {
    ExprId value = AnyValue();
    if (has_additional && schema["additionalProperties"].is_object()) {
      TP_ASSIGN_OR_RETURN(value, Convert(schema["additionalProperties"], path + "/additionalProperties"));
    }
    extra = b_->Seq({PlainString(), Sep(":"), value});
  }
  const ExprId comma = Sep(",");
  const ExprId tail = extra ? b_->Star(b_->Seq({comma, *extra})) : b_->Empty();
  // The first property written carries no comma: one alternative per
  // property that may come first (all before it optional).
  std::vector<ExprId> firsts;
  bool all_optional = true;
  for (size_t i = 0; i < items.size() && all_optional; ++i) {
    std::vector<ExprId> seq = {items[i].first};
    for (size_t j = i + 1; j < items.size(); ++j) {
      const ExprId next = b_->Seq({comma, items[j].first});
      seq.push_back(items[j].second ? next : b_->Optional(next));
    }
    seq.push_back(tail);
    firsts.push_back(b_->Seq(std::move(seq)));
    all_optional = !items[i].second;
  }
  if (all_optional && extra) firsts.push_back(b_->Seq({*extra, tail}));
  return AsRule(absl::StrCat("object ", path), Bracketed("{", firsts, all_optional, "}"));
}

absl::StatusOr<ExprId> JsonSchemaConverter::ConvertArray(const Json& schema, const std::string& path) {
  TP_ASSIGN_OR_RETURN(const int32_t min, NonNegativeInt(schema, "minItems", 0, path));
  TP_ASSIGN_OR_RETURN(const int32_t max, NonNegativeInt(schema, "maxItems", GrammarBuilder::kUnbounded, path));
  if (max != GrammarBuilder::kUnbounded && max < min) return SchemaError(path, "'maxItems' < 'minItems'");
  std::vector<ExprId> prefix;
  if (schema.contains("prefixItems")) {
    const Json& p = schema["prefixItems"];
    if (!p.is_array()) return SchemaError(path, "'prefixItems' must be an array");
    for (size_t i = 0; i < p.size(); ++i) {
      TP_ASSIGN_OR_RETURN(ExprId e, Convert(p[i], absl::StrCat(path, "/prefixItems/", i)));
      prefix.push_back(e);
    }
  }
  std::optional<ExprId> item;  // absent: no elements past the prefix
  if (!schema.contains("items") || schema["items"] != false) {
    if (schema.contains("items")) {
      TP_ASSIGN_OR_RETURN(item, Convert(schema["items"], path + "/items"));
    } else {
      item = AnyValue();
    }
  }
  const int32_t k = static_cast<int32_t>(prefix.size());
  if (!item && min > k) return SchemaError(path, "'minItems' exceeds the items allowed");
  const ExprId comma = Sep(",");
  // The elements from index i on, each after a comma.
  std::function<ExprId(int32_t)> rest = [&](int32_t i) -> ExprId {
    if (max != GrammarBuilder::kUnbounded && i >= max) return b_->Empty();
    if (i >= k) {
      if (!item) return b_->Empty();
      return b_->Repeat(b_->Seq({comma, *item}), std::max(0, min - i),
                        max == GrammarBuilder::kUnbounded ? max : max - i);
    }
    const ExprId x = b_->Seq({comma, prefix[i], rest(i + 1)});
    return i >= min ? b_->Optional(x) : x;
  };
  std::vector<ExprId> elements;
  if (max != 0 && (k > 0 || item)) elements.push_back(b_->Seq({k > 0 ? prefix[0] : *item, rest(1)}));
  return AsRule(absl::StrCat("array ", path), Bracketed("[", elements, min == 0, "]"));
}

absl::StatusOr<Grammar> JsonSchemaGrammarFromJson(const Json& schema, const JsonGrammarOptions& options) {
  GrammarBuilder b;
  JsonSchemaConverter converter(&b, options, &schema);
  TP_ASSIGN_OR_RETURN(ExprId root, converter.Convert(schema, "#"));
  b.SetRule(b.root(), root);
  return CompileGrammar(b, options.limits);
}

absl::StatusOr<Grammar> JsonSchemaGrammar(std::string_view schema, const JsonGrammarOptions& options) {
  Json parsed = Json::parse(schema.begin(), schema.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError("JSON Schema is not valid JSON");
  return JsonSchemaGrammarFromJson(parsed, options);
}

absl::StatusOr<Grammar> JsonObjectGrammar(const JsonGrammarOptions& options) {
  GrammarBuilder b;
  JsonSchemaConverter converter(&b, options, nullptr);
  b.SetRule(b.root(), converter.AnyObject());
  return CompileGrammar(b, options.limits);
}

}  // namespace tpserve::structured
