#include "gateway/json_fields.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "gateway/http_error.h"
#include "gateway/json_depth.h"

namespace tpserve::gateway {

using nlohmann::json;

absl::Status CheckJsonDepth(std::string_view text, const std::string& param, const char* what) {
  if (JsonDepthWithin(text, kMaxJsonDepth)) return absl::OkStatus();
  std::string message =
      absl::StrCat(what, " nests arrays and objects deeper than ", kMaxJsonDepth, " levels");
  return param.empty() ? absl::InvalidArgumentError(message) : InvalidField(param, message);
}

const json* Fields::Find(const char* key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status Fields::Bool(const char* key, bool* out) const {
  const json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return InvalidField(key, absl::StrCat(key, " must be a boolean"));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status Fields::Number(const char* key, double lo, double hi, std::optional<double>* out) const {
  const json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return InvalidField(key, absl::StrCat(key, " must be a number"));
  double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return InvalidField(key, absl::StrCat(key, " must be in [", lo, ", ", hi, "], got ", d));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status Fields::Int(const char* key, int64_t lo, int64_t hi, std::optional<int64_t>* out) const {
  const json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  auto value = AsInt(*v);
  if (!value.has_value()) return InvalidField(key, absl::StrCat(key, " must be an integer"));
  if (*value < lo || *value > hi) {
    return InvalidField(key, absl::StrCat(key, " must be in [", lo, ", ", hi, "], got ", *value));
  }
  *out = *value;
  return absl::OkStatus();
}

absl::Status Fields::String(const char* key, std::string* out) const {
  const json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return InvalidField(key, absl::StrCat(key, " must be a string"));
  *out = v->get<std::string>();
  return absl::OkStatus();
}

std::optional<int64_t> Fields::AsInt(const json& v) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}) return std::nullopt;
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace tpserve::gateway
