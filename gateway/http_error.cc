#include "gateway/http_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"

namespace tpserve::gateway {
namespace {

// Status payload keys; URLs by Abseil convention.
constexpr char kParamPayload[] = "type.tpserve/param";
constexpr char kRetryAfterPayload[] = "type.tpserve/retry-after-ms";

// OpenAI's "type" and "code" for each HTTP status, as the OpenAI API and
// vLLM report them.
struct ErrorKind {
  const char* type;
  const char* code;
};

ErrorKind KindFor(int http_status) {
  switch (http_status) {
    case 400: return {"invalid_request_error", "invalid_request"};
    case 401: return {"authentication_error", "invalid_api_key"};
    case 404: return {"invalid_request_error", "model_not_found"};
    case 413: return {"invalid_request_error", "request_too_large"};
    case 429: return {"rate_limit_error", "rate_limit_exceeded"};
    case 503: return {"service_unavailable_error", "service_unavailable"};
    case 504: return {"timeout_error", "timeout"};
    default: return {"internal_server_error", "internal_error"};
  }
}

}  // namespace

absl::Status InvalidField(const std::string& param, const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

absl::Status WithRetryAfterMs(absl::Status status, int64_t retry_after_ms) {
  status.SetPayload(kRetryAfterPayload, absl::Cord(std::to_string(retry_after_ms)));
  return status;
}

std::optional<std::string> ErrorParam(const absl::Status& status) {
  auto payload = status.GetPayload(kParamPayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

std::optional<int64_t> RetryAfterMs(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  if (!payload.has_value()) return std::nullopt;
  try {
    return std::stoll(std::string(*payload));
  } catch (...) {
    return std::nullopt;
  }
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

std::string ErrorBodyForHttpStatus(int http_status, const std::string& message) {
  ErrorKind kind = KindFor(http_status);
  nlohmann::json error = {{"message", message}, {"type", kind.type}, {"param", nullptr},
                          {"code", kind.code}};
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                nlohmann::json::error_handler_t::replace);
}

std::string ErrorBody(const absl::Status& status) {
  int http_status = HttpStatusFor(status.code());
  ErrorKind kind = KindFor(http_status);
  nlohmann::json error = {
      {"message", std::string(status.message())},
      {"type", kind.type},
      {"param", nullptr},
      {"code", kind.code},
  };
  if (auto param = ErrorParam(status)) error["param"] = *param;
  // error_handler_t::replace: a message quoting the client's bad UTF-8 must
  // still serialise instead of throwing.
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                nlohmann::json::error_handler_t::replace);
}

HttpError ToHttpError(const absl::Status& status) {
  HttpError error;
  error.http_status = HttpStatusFor(status.code());
  error.body = ErrorBody(status);
  if (error.http_status == 429) {
    // Clients must back off some time even without a hint; 1 s is the
    // smallest value Retry-After can express.
    int64_t ms = RetryAfterMs(status).value_or(1000);
    error.retry_after_s = std::max<int64_t>(1, (ms + 999) / 1000);
  }
  return error;
}

}  // namespace tpserve::gateway
