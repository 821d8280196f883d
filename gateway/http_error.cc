#include "gateway/http_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "common/logging.h"

namespace tpserve::gateway {
namespace {

// Status payload keys; URLs by Abseil convention.
constexpr char kParamPayload[] = "type.tpserve/param";
// An HTTP status other than the code's usual one (415).
constexpr char kHttpStatusPayload[] = "type.tpserve/http-status";
constexpr char kShownPayload[] = "type.tpserve/shown-to-clients";

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
    case 404: return {"invalid_request_error", "not_found"};
    case 408: return {"invalid_request_error", "request_timeout"};
    case 413: return {"invalid_request_error", "request_too_large"};
    case 415: return {"invalid_request_error", "unsupported_media_type"};
    case 429: return {"rate_limit_error", "rate_limit_exceeded"};
    case 431: return {"invalid_request_error", "request_header_fields_too_large"};
    case 503: return {"service_unavailable_error", "service_unavailable"};
    case 504: return {"timeout_error", "timeout"};
    default:
      if (http_status < 500) return {"invalid_request_error", "invalid_request"};
      return {"internal_server_error", "internal_error"};
  }
}

// What clients read instead of a server-side error's detail.
const char* GenericMessage(int http_status) {
  switch (http_status) {
    case 503: return "the model service is unavailable; retry later";
    case 504: return "the model service did not answer in time";
    default: return "internal server error";
  }
}

std::string Serialize(const nlohmann::json& error) {
  // error_handler_t::replace: a message quoting the client's bad UTF-8 must
  // still serialise instead of throwing.
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::Status InvalidField(const std::string& param, const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

std::optional<std::string> ErrorParam(const absl::Status& status) {
  auto payload = status.GetPayload(kParamPayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
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

absl::Status UnsupportedMediaType(const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kHttpStatusPayload, absl::Cord("415"));
  return status;
}

absl::Status ShownToClients(absl::Status status) {
  status.SetPayload(kShownPayload, absl::Cord("1"));
  return status;
}

namespace {

int HttpStatusOf(const absl::Status& status) {
  if (auto payload = status.GetPayload(kHttpStatusPayload)) {
    int http = 0;
    if (absl::SimpleAtoi(std::string(*payload), &http)) return http;
  }
  return HttpStatusFor(status.code());
}

}  // namespace

std::string ErrorBodyForHttpStatus(int http_status, const std::string& message) {
  ErrorKind kind = KindFor(http_status);
  return Serialize({{"message", message}, {"type", kind.type}, {"param", nullptr},
                    {"code", kind.code}});
}

std::string ErrorBody(const absl::Status& status) {
  int http_status = HttpStatusOf(status);
  ErrorKind kind = KindFor(http_status);
  std::string message(status.message());
  if (http_status >= 500 && !status.GetPayload(kShownPayload).has_value()) {
    // Router and gRPC messages name internal addresses ("rank 1
    // (10.0.3.7:50062) failed in Step"); operators find them in the log.
    spdlog::warn("answering HTTP {} for: {}", http_status, status.ToString());
    message = GenericMessage(http_status);
  }
  nlohmann::json error = {
      {"message", message},
      {"type", kind.type},
      {"param", nullptr},
      // OpenAI's code for an unknown model; other 404s are unknown paths.
      {"code", status.code() == absl::StatusCode::kNotFound ? "model_not_found" : kind.code},
  };
  if (auto param = ErrorParam(status)) error["param"] = *param;
  return Serialize(error);
}

HttpError ToHttpError(const absl::Status& status) {
  HttpError error;
  error.http_status = HttpStatusOf(status);
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
