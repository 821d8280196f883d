// Typed reads of optional fields of one JSON request object, naming the
// field in every error (an OpenAI-style invalid_request_error for `param`).
// A JSON null counts as "not set", as OpenAI's SDKs send it.
#ifndef TPSERVE_GATEWAY_JSON_FIELDS_H_
#define TPSERVE_GATEWAY_JSON_FIELDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

namespace tpserve::gateway {

// INVALID_ARGUMENT (param `param`, none when empty) when `text` nests arrays
// and objects deeper than kMaxJsonDepth (gateway/json_depth.h). Every JSON
// text from a client goes through this before it is parsed.
absl::Status CheckJsonDepth(std::string_view text, const std::string& param, const char* what);

class Fields {
 public:
  explicit Fields(const nlohmann::json& object) : object_(object) {}

  // The field, or null when absent or JSON null.
  const nlohmann::json* Find(const char* key) const;
  // Each leaves *out unchanged when the field is not set.
  absl::Status Bool(const char* key, bool* out) const;
  // Numbers must be finite and inside [lo, hi].
  absl::Status Number(const char* key, double lo, double hi, std::optional<double>* out) const;
  // Integers may be sent as 5 or 5.0 (pydantic accepts both), inside [lo, hi].
  absl::Status Int(const char* key, int64_t lo, int64_t hi, std::optional<int64_t>* out) const;
  absl::Status String(const char* key, std::string* out) const;

  // An integral JSON number (5 or 5.0) as int64, or nullopt.
  static std::optional<int64_t> AsInt(const nlohmann::json& v);

 private:
  const nlohmann::json& object_;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_JSON_FIELDS_H_
