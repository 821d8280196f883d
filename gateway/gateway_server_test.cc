// End-to-end tests of the gateway over raw HTTP against the fake router, with
// the real tokenizer and chat template of the tiny chat fixture.
#include "gateway/gateway_server.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/text/tokenizer.h"
#include "gateway/testing/fake_router.h"
#include "gateway/testing/gateway_fixture.h"
#include "gateway/testing/raw_http.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;
using testing::FakeRouter;
using testing::FakeRouterScript;
using testing::Request;
using testing::SseEvents;

using testing::kModelDir;
using testing::kReply;

// Reads int32 tensor `name` from a safetensors file (the reference goldens).
std::vector<int> ReadIntTensor(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  json h = json::parse(header);
  auto offsets = h[name]["data_offsets"];
  size_t begin = offsets[0], end = offsets[1];
  std::vector<int> out((end - begin) / 4);
  in.seekg(static_cast<std::streamoff>(8 + header_len + begin));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(end - begin));
  return out;
}

class GatewayServerTest : public testing::GatewayFixture {};

constexpr char kChinesePrompt[] =
    R"({"model": "tiny", "messages": [{"role": "user", "content": "你好，帮我介绍一下什么是大语言模型。"}]})";

TEST_F(GatewayServerTest, ChatNonStreamingMatchesReferencePromptAndReply) {
  StartGateway();
  auto r = Request(port(), "POST", "/v1/chat/completions", kChinesePrompt);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Body(r);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], kReply);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // The prompt the router got is what HF's apply_chat_template + tokenizer
  // produce for this conversation (goldens p2.input_ids).
  std::vector<int> golden =
      ReadIntTensor(std::string(kModelDir) + "/goldens.safetensors", "p2.input_ids");
  auto requests = router_->requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& sent = requests[0];
  EXPECT_EQ(std::vector<int>(sent.prompt_token_ids().begin(), sent.prompt_token_ids().end()),
            golden);
  // generation_config.json defaults (temperature 0.7, top_p 0.8, top_k 20,
  // repetition_penalty 1.05); max_tokens fills the context left.
  EXPECT_FLOAT_EQ(sent.sampling().temperature(), 0.7f);
  EXPECT_FLOAT_EQ(sent.sampling().top_p(), 0.8f);
  EXPECT_EQ(sent.sampling().top_k(), 20);
  EXPECT_FLOAT_EQ(sent.sampling().repetition_penalty(), 1.05f);
  EXPECT_EQ(sent.sampling().max_tokens(), 4096 - static_cast<int>(golden.size()));
  EXPECT_EQ(j["usage"]["prompt_tokens"], golden.size());
  // The reply plus the EOS token that ended it.
  EXPECT_EQ(j["usage"]["completion_tokens"], reply_ids_.size() + 1);
  EXPECT_EQ(j["usage"]["total_tokens"], golden.size() + reply_ids_.size() + 1);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 16);
}

TEST_F(GatewayServerTest, ChatStreamingFraming) {
  StartGateway();
  auto r = Request(port(), "POST", "/v1/chat/completions",
                   R"({"model": "tiny", "stream": true, "stream_options": {"include_usage": true},
                       "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.headers["content-type"].find("text/event-stream"), std::string::npos);
  auto events = SseEvents(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  json role = json::parse(events[0]);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string finish;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    json c = json::parse(events[i]);
    ASSERT_EQ(c["choices"].size(), 1u) << events[i];
    EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
    text += c["choices"][0]["delta"].value("content", "");
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, kReply);
  EXPECT_EQ(finish, "stop");
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], reply_ids_.size() + 1);
}

TEST_F(GatewayServerTest, StopStringTruncatesAndCancelsTheRouterCall) {
  FakeRouterScript slow = Script();
  slow.token_delay = std::chrono::milliseconds(20);
  router_->SetScript(slow);
  StartGateway();
  auto r = Request(port(), "POST", "/v1/completions",
                   R"({"model": "tiny", "prompt": "x", "max_tokens": 50, "stop": [" STOP"], "n": 2})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Body(r);
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 2u);
  for (const json& c : j["choices"]) {
    EXPECT_EQ(c["text"], "Hello there,");
    EXPECT_EQ(c["finish_reason"], "stop");
    EXPECT_EQ(c["stop_reason"], " STOP");
  }
  // Both router calls were cancelled on the match, not run to the end.
  EXPECT_TRUE(router_->WaitForCancelled(2, std::chrono::seconds(2)));
  // n=2 with a seed: two router calls with distinct seeds.
}

TEST_F(GatewayServerTest, SeededNGivesDistinctReproducibleSeeds) {
  StartGateway();
  auto r = Request(port(), "POST", "/v1/completions",
                   R"({"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 2, "n": 3, "seed": 10})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto reqs = router_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  std::vector<uint64_t> seeds;
  for (const auto& q : reqs) seeds.push_back(q.sampling().seed());
  std::sort(seeds.begin(), seeds.end());
  EXPECT_EQ(seeds, (std::vector<uint64_t>{10, 11, 12}));
  json j = Body(r);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
}

TEST_F(GatewayServerTest, LogprobsShapes) {
  StartGateway();
  auto chat = Request(port(), "POST", "/v1/chat/completions",
                      R"({"model": "tiny", "max_tokens": 2, "logprobs": true, "top_logprobs": 2,
                          "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_EQ(chat.status, 200) << chat.body;
  json lp = Body(chat)["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 2u);
  EXPECT_EQ(lp[0]["token"], tokenizer_->Decode(std::vector<int32_t>{reply_ids_[0]}));
  EXPECT_FLOAT_EQ(lp[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(lp[0]["top_logprobs"].size(), 2u);
  auto completion = Request(port(), "POST", "/v1/completions",
                            R"({"model": "tiny", "prompt": "x", "max_tokens": 2, "logprobs": 1})");
  ASSERT_EQ(completion.status, 200) << completion.body;
  json clp = Body(completion)["choices"][0]["logprobs"];
  EXPECT_EQ(clp["tokens"].size(), 2u);
  EXPECT_EQ(clp["token_logprobs"].size(), 2u);
  EXPECT_EQ(clp["text_offset"][0], 0);
}

TEST_F(GatewayServerTest, InfoEndpoints) {
  StartGateway();
  json models = Body(Request(port(), "GET", "/v1/models"));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["max_model_len"], 4096);
  EXPECT_EQ(Body(Request(port(), "GET", "/version"))["version"], "0.1.0");
  json tok = Body(Request(port(), "POST", "/tokenize", R"({"prompt": "Hello there"})"));
  auto expected = tokenizer_->Encode("Hello there", true);
  EXPECT_EQ(tok["tokens"], json(expected));
  EXPECT_EQ(tok["count"], expected.size());
  EXPECT_EQ(tok["max_model_len"], 4096);
  json chat_tok = Body(Request(port(), "POST", "/tokenize", kChinesePrompt));
  EXPECT_EQ(chat_tok["count"], 38);
  json detok = Body(Request(port(), "POST", "/detokenize",
                            json{{"tokens", expected}}.dump()));
  EXPECT_EQ(detok["prompt"], "Hello there");
  ExpectError(Request(port(), "POST", "/detokenize", R"({"tokens": [-1]})"), 400, "tokens");
  ExpectError(Request(port(), "POST", "/tokenize", R"({})"), 400, "prompt");
  Request(port(), "POST", "/v1/completions", R"({"model": "tiny", "prompt": "x", "max_tokens": 2})");
  std::string metrics = Request(port(), "GET", "/metrics").body;
  for (const char* name :
       {"tpserve:request_success_total", "tpserve:time_to_first_token_seconds",
        "tpserve:inter_token_latency_seconds", "tpserve:e2e_request_latency_seconds",
        "tpserve:prompt_tokens_total", "tpserve:generation_tokens_total",
        "tpserve:num_requests_in_flight", "tpserve:router_num_requests_running",
        "tpserve:router_num_requests_waiting", "tpserve:router_kv_cache_usage_perc",
        "tpserve:http_requests_total"}) {
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
  }
}

TEST_F(GatewayServerTest, ValidationErrors) {
  StartGateway();
  ExpectError(Request(port(), "POST", "/v1/chat/completions", "{not json"), 400, "");
  ExpectError(Request(port(), "POST", "/v1/chat/completions",
                      R"({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": -1})"),
              400, "temperature");
  ExpectError(Request(port(), "POST", "/v1/chat/completions",
                      R"({"model": "nope", "messages": [{"role": "user", "content": "x"}]})"),
              404, "");
  ExpectError(Request(port(), "POST", "/v1/chat/completions",
                      R"({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 9})"),
              400, "n");
  ExpectError(Request(port(), "POST", "/v1/completions",
                      R"({"model": "tiny", "prompt": "x", "echo": true})"),
              400, "echo");
  ExpectError(Request(port(), "POST", "/v1/completions",
                      R"({"model": "tiny", "prompt": "x", "max_tokens": 5000})"),
              400, "max_tokens");
  // prompt + max_tokens over max_model_len: the message has both counts.
  std::vector<int> long_prompt(4000, 11);
  auto r = Request(port(), "POST", "/v1/completions",
                   json{{"model", "tiny"}, {"prompt", long_prompt}, {"max_tokens", 200}}.dump());
  ExpectError(r, 400, "max_tokens");
  EXPECT_NE(r.body.find("4000 in the prompt"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("200 in the completion"), std::string::npos) << r.body;
  std::vector<int> too_long(4096, 11);
  ExpectError(Request(port(), "POST", "/v1/completions",
                      json{{"model", "tiny"}, {"prompt", too_long}}.dump()),
              400, "prompt");
  // Body over max_request_body_bytes (64 KiB here).
  std::string big = R"({"model": "tiny", "prompt": ")" + std::string(70000, 'a') + R"("})";
  ExpectError(Request(port(), "POST", "/v1/completions", big), 413, "");
  ExpectError(Request(port(), "GET", "/v1/nothing"), 404, "");
  EXPECT_TRUE(router_->requests().empty());
}

// issue 22: the 140 KB reproducer (70,000 nested arrays in a message)
// overflowed a thread's stack and took the whole gateway down.
TEST_F(GatewayServerTest, DeeplyNestedJsonIsA400AndTheGatewaySurvives) {
  config_.max_request_body_bytes = 1 << 20;
  StartGateway();
  const std::string deep = std::string(70000, '[') + std::string(70000, ']');
  const std::string chat = R"({"messages": [{"role": "user", "content": )" + deep + "}]}";
  for (const char* path : {"/v1/chat/completions", "/tokenize"}) {
    auto r = Request(port(), "POST", path, chat);
    ExpectError(r, 400, "");
    EXPECT_NE(r.body.find("deeper than 128 levels"), std::string::npos) << r.body;
  }
  ExpectError(Request(port(), "POST", "/v1/completions", R"({"prompt": )" + deep + "}"), 400, "");
  ExpectError(Request(port(), "POST", "/detokenize", R"({"tokens": )" + deep + "}"), 400, "");
  EXPECT_EQ(Request(port(), "GET", "/health").status, 200);
  EXPECT_TRUE(router_->requests().empty());
}

TEST_F(GatewayServerTest, ApiKeys) {
  StartGateway({"sk-test"});
  ExpectError(Request(port(), "GET", "/v1/models"), 401, "");
  ExpectError(Request(port(), "GET", "/v1/models", "", {"Authorization: Bearer wrong"}), 401, "");
  EXPECT_EQ(Request(port(), "GET", "/v1/models", "", {"Authorization: Bearer sk-test"}).status,
            200);
  EXPECT_EQ(Request(port(), "GET", "/health").status, 200);  // open even with keys
  ExpectError(Request(port(), "POST", "/v1/completions", R"({"prompt": "x"})"), 401, "");
  EXPECT_TRUE(router_->requests().empty());
}

TEST_F(GatewayServerTest, RouterErrorsMapToHttp) {
  StartGateway();
  const char* body = R"({"model": "tiny", "prompt": "x", "max_tokens": 2})";
  router_->FailNext(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"), 1, 1500);
  auto r = Request(port(), "POST", "/v1/completions", body);
  ExpectError(r, 429, "");
  EXPECT_EQ(r.headers["retry-after"], "2");
  router_->FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "rank 1 lost"), 1);
  ExpectError(Request(port(), "POST", "/v1/completions", body), 503, "");
  router_->FailNext(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"), 1);
  ExpectError(Request(port(), "POST", "/v1/completions", body), 504, "");
  router_->FailNext(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "too long for KV"), 1);
  ExpectError(Request(port(), "POST", "/v1/completions", body), 400, "");
  router_->FailNext(grpc::Status(grpc::StatusCode::INTERNAL, "bug"), 1);
  ExpectError(Request(port(), "POST", "/v1/completions", body), 500, "");
  // Streaming requests get the same statuses when the failure comes first.
  router_->FailNext(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"), 1, 300);
  r = Request(port(), "POST", "/v1/completions",
              R"({"model": "tiny", "prompt": "x", "max_tokens": 2, "stream": true})");
  ExpectError(r, 429, "");
  EXPECT_EQ(r.headers["retry-after"], "1");
}

TEST_F(GatewayServerTest, FailoverToAnotherRouterOnUnavailable) {
  auto second = FakeRouter::Start(testing::TinyChatModelInfo(4096), Script()).value();
  // The first router looks idle (so it is picked first) but is down.
  router_->SetLoad(0, 0);
  second->SetLoad(20, 0);
  router_->FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), 100);
  StartGateway({}, {router_->address(), second->address()});
  auto r = Request(port(), "POST", "/v1/completions",
                   R"({"model": "tiny", "prompt": "x", "max_tokens": 2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(router_->requests().size(), 1u);
  EXPECT_EQ(second->requests().size(), 1u);
  // With every router down the client gets 503.
  second->FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), 100);
  ExpectError(Request(port(), "POST", "/v1/completions",
                      R"({"model": "tiny", "prompt": "x", "max_tokens": 2})"),
              503, "");
}

TEST_F(GatewayServerTest, StreamingClientDisconnectCancelsRouterCall) {
  FakeRouterScript slow = Script();
  slow.token_delay = std::chrono::milliseconds(200);
  router_->SetScript(slow);
  StartGateway();
  testing::RawConnection conn(port());
  ASSERT_TRUE(conn.Send("POST", "/v1/chat/completions",
                        R"({"model": "tiny", "stream": true, "max_tokens": 100,
                            "messages": [{"role": "user", "content": "hi"}]})"));
  std::string got = conn.ReadUntil("\"content\":\"Hello");
  ASSERT_NE(got.find("Hello"), std::string::npos) << got;
  auto t0 = std::chrono::steady_clock::now();
  conn.Close();
  ASSERT_TRUE(router_->WaitForCancelled(1, std::chrono::seconds(2)));
  // A FIN alone could be a half-close (the client still reading), so a
  // stream in progress learns of the hang-up from the reset its next token
  // write meets: cancelled within one token interval, not at the end.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400));
}

TEST_F(GatewayServerTest, NonStreamingClientDisconnectCancelsRouterCall) {
  FakeRouterScript slow = Script();
  slow.first_token_delay = std::chrono::seconds(5);
  router_->SetScript(slow);
  StartGateway();
  testing::RawConnection conn(port());
  ASSERT_TRUE(conn.Send("POST", "/v1/completions",
                        R"({"model": "tiny", "prompt": "x", "max_tokens": 5})"));
  for (int i = 0; i < 200 && router_->active() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(router_->active(), 1);
  conn.Close();
  EXPECT_TRUE(router_->WaitForCancelled(1, std::chrono::seconds(1)));
}

TEST_F(GatewayServerTest, ShutdownDrainsAndIsIdempotent) {
  StartGateway();
  gateway_->Shutdown();
  gateway_->Shutdown();
  gateway_->Wait();
  EXPECT_EQ(Request(port(), "GET", "/health").status, 0);  // nothing listens
}

}  // namespace
}  // namespace tpserve::gateway
