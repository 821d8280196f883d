// The one place where errors become HTTP: absl::Status codes map to HTTP
// statuses and OpenAI error objects ({"error": {message, type, param, code}}).
// Handlers build an absl::Status (with InvalidField / WithRetryAfterMs for
// the extras; a retry hint becomes a Retry-After header rounded up to whole
// seconds) and hand it here; nothing else in the gateway picks a status code.
#ifndef TPSERVE_GATEWAY_HTTP_ERROR_H_
#define TPSERVE_GATEWAY_HTTP_ERROR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/grpc_status.h"  // WithRetryAfterMs, RetryAfterMs: the retry hint

namespace tpserve::gateway {

// An HTTP error response ready to send.
struct HttpError {
  // HTTP status code (400, 401, 404, 429, 500, 503, 504, ...).
  int http_status = 500;
  // OpenAI error object serialised as JSON.
  std::string body;
  // Seconds for the Retry-After header (429 only).
  std::optional<int64_t> retry_after_s;
};

// INVALID_ARGUMENT naming the offending request field, so the error object's
// "param" is filled as OpenAI clients expect.
absl::Status InvalidField(const std::string& param, const std::string& message);

// 415: the body's Content-Type is not one the endpoint takes.
absl::Status UnsupportedMediaType(const std::string& message);

// Server-side errors (HTTP 5xx) reach clients with a generic message (the
// detail, which may name internal hosts and ports, is logged instead); a
// status marked by this keeps its own message, for messages the gateway
// writes itself and knows to be safe.
absl::Status ShownToClients(absl::Status status);

// The "param" attached by InvalidField, if any.
std::optional<std::string> ErrorParam(const absl::Status& status);

// HTTP status for a status code (INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
// DEADLINE_EXCEEDED 504, anything else 500).
int HttpStatusFor(absl::StatusCode code);

// The OpenAI error object (as a JSON string) for a non-OK status. 5xx
// messages are replaced (see ShownToClients) and logged.
std::string ErrorBody(const absl::Status& status);

// An OpenAI error object for an HTTP status decided outside the status map
// (the connection layer's answers: unknown path, malformed request, body
// too large, timeouts).
std::string ErrorBodyForHttpStatus(int http_status, const std::string& message);

// Everything needed to answer a failed request.
HttpError ToHttpError(const absl::Status& status);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_HTTP_ERROR_H_
