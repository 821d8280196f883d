#include "gateway/http_error.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tpserve::gateway {
namespace {

TEST(HttpErrorTest, MapsEveryCode) {
  struct Case {
    absl::Status status;
    int http;
    const char* type;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("x"), 400, "invalid_request_error"},
      {absl::UnauthenticatedError("x"), 401, "authentication_error"},
      {absl::NotFoundError("x"), 404, "invalid_request_error"},
      {absl::ResourceExhaustedError("x"), 429, "rate_limit_error"},
      {absl::UnavailableError("x"), 503, "service_unavailable_error"},
      {absl::DeadlineExceededError("x"), 504, "timeout_error"},
      {absl::InternalError("x"), 500, "internal_server_error"},
      {absl::FailedPreconditionError("x"), 500, "internal_server_error"},
      {absl::UnknownError("x"), 500, "internal_server_error"},
  };
  for (const Case& c : cases) {
    HttpError error = ToHttpError(c.status);
    EXPECT_EQ(error.http_status, c.http) << c.status;
    auto body = nlohmann::json::parse(error.body);
    EXPECT_EQ(body["error"]["type"], c.type) << c.status;
    // Server-side errors get a generic message (see below).
    if (c.http < 500) {
      EXPECT_EQ(body["error"]["message"], "x");
    }
    EXPECT_TRUE(body["error"]["param"].is_null());
    EXPECT_TRUE(body["error"]["code"].is_string());
    EXPECT_EQ(error.retry_after_s.has_value(), c.http == 429);
  }
}

// issue 22: router errors named internal worker addresses to clients.
TEST(HttpErrorTest, ServerErrorsHideTheirDetail) {
  for (const absl::Status& status :
       {absl::UnavailableError("worker rank 1 (10.0.3.7:50062) failed in Step"),
        absl::InternalError("10.0.3.7:50051: bug"), absl::DeadlineExceededError("10.0.3.7")}) {
    auto body = nlohmann::json::parse(ToHttpError(status).body);
    std::string message = body["error"]["message"];
    EXPECT_EQ(message.find("10.0.3.7"), std::string::npos) << message;
    EXPECT_FALSE(message.empty());
  }
  auto unavailable = nlohmann::json::parse(ToHttpError(absl::UnavailableError("a")).body);
  EXPECT_NE(unavailable["error"]["message"].get<std::string>().find("unavailable"),
            std::string::npos);
  // Messages the gateway knows to be safe are kept.
  auto shown = nlohmann::json::parse(
      ToHttpError(ShownToClients(absl::UnavailableError("no router is ready"))).body);
  EXPECT_EQ(shown["error"]["message"], "no router is ready");
}

TEST(HttpErrorTest, CodesForNotFoundAndMediaType) {
  auto model = nlohmann::json::parse(ToHttpError(absl::NotFoundError("no such model")).body);
  EXPECT_EQ(model["error"]["code"], "model_not_found");
  auto path = nlohmann::json::parse(ErrorBodyForHttpStatus(404, "no route for GET /x"));
  EXPECT_EQ(path["error"]["code"], "not_found");
  HttpError media = ToHttpError(UnsupportedMediaType("Content-Type must be application/json"));
  EXPECT_EQ(media.http_status, 415);
  auto body = nlohmann::json::parse(media.body);
  EXPECT_EQ(body["error"]["code"], "unsupported_media_type");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["message"], "Content-Type must be application/json");
}

TEST(HttpErrorTest, InvalidFieldNamesParam) {
  HttpError error = ToHttpError(InvalidField("temperature", "temperature must be >= 0"));
  EXPECT_EQ(error.http_status, 400);
  auto body = nlohmann::json::parse(error.body);
  EXPECT_EQ(body["error"]["param"], "temperature");
  EXPECT_EQ(body["error"]["message"], "temperature must be >= 0");
}

TEST(HttpErrorTest, RetryAfterRoundsUpToSeconds) {
  EXPECT_EQ(ToHttpError(WithRetryAfterMs(absl::ResourceExhaustedError("full"), 1500))
                .retry_after_s,
            2);
  EXPECT_EQ(ToHttpError(WithRetryAfterMs(absl::ResourceExhaustedError("full"), 0))
                .retry_after_s,
            1);
  EXPECT_EQ(ToHttpError(absl::ResourceExhaustedError("full")).retry_after_s, 1);
  EXPECT_EQ(RetryAfterMs(WithRetryAfterMs(absl::ResourceExhaustedError("f"), 250)), 250);
}

TEST(HttpErrorTest, InvalidUtf8InMessageDoesNotThrow) {
  HttpError error = ToHttpError(absl::InvalidArgumentError("bad \xff byte"));
  EXPECT_EQ(error.http_status, 400);
  EXPECT_NO_THROW(nlohmann::json::parse(error.body));
}

}  // namespace
}  // namespace tpserve::gateway
