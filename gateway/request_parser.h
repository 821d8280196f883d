// Parsing and validation of the OpenAI request bodies for /v1/chat/completions
// and /v1/completions. Every bad field becomes INVALID_ARGUMENT naming the
// field (see http_error.h); an unknown model is NOT_FOUND. Nothing here knows
// about tokens: prompts stay text (or client-given ids) until the text layer.
#ifndef TPSERVE_GATEWAY_REQUEST_PARSER_H_
#define TPSERVE_GATEWAY_REQUEST_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "proto/common.pb.h"

namespace tpserve::gateway {

// Limits a request is checked against (from ServerConfig and the model).
struct RequestLimits {
  // Names clients may put in "model".
  std::vector<std::string> served_model_names;
  int max_n = 16;
  int max_stop_strings = 16;
  // Most completions per request: prompts x n. Each is a router call (and a
  // gateway thread), so a long prompt list times n must not flood the queue.
  int max_choices = 256;
  // Longest prompt + completion; 0 while unknown (then only >= 1 is checked).
  int max_model_len = 0;
  // Token ids must be below this; 0 while unknown.
  int vocab_size = 0;
  // Sampling defaults from generation_config.json, applied to unset fields.
  GenerationConfig generation_defaults;
};

// A validated generation request, chat or completion.
struct GenerationRequest {
  // True for /v1/chat/completions.
  bool chat = false;
  std::string model;
  // Chat: the "messages" array as sent (validated), and "tools" (or null).
  // Ordered, so that the template's `tojson` keeps the client's key order as
  // Python does.
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;
  // Chat: turn <tool_call> blocks of the output into `tool_calls`
  // (gateway/tool_calls.h): tools were given and tool_choice is not "none".
  bool parse_tool_calls = false;
  // Extra keyword arguments for the chat template ("chat_template_kwargs").
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  // Chat: whether to append the assistant generation prompt (default true).
  bool add_generation_prompt = true;
  // Completions: one entry per prompt, either text or client-given token ids.
  std::vector<std::string> prompt_texts;
  std::vector<std::vector<int>> prompt_token_ids;
  // Sampling as the router takes it. max_tokens is 0 when the client did not
  // set it (the server fills it from the context left).
  tpserve::v1::SamplingParams sampling;
  // Stop strings (gateway-side).
  std::vector<std::string> stop;
  // vLLM bad_words as sent; tokenized into sampling.bad_words with the
  // prompt (EncodeBadWords in structured_request.h).
  std::vector<std::string> bad_words;
  // Completions per prompt.
  int n = 1;
  bool stream = false;
  // stream_options.include_usage.
  bool include_usage = false;
  // stream_options.continuous_usage_stats (vLLM): usage on every chunk.
  bool continuous_usage = false;
  // Completions: logprobs=k asked for (chat uses sampling.logprobs).
  bool completion_logprobs = false;
  // Whether to add the tokenizer's special tokens when encoding (vLLM
  // default: true for completions, false for chat, whose template has them).
  bool add_special_tokens = false;
  // Whether special tokens are removed when decoding the output.
  bool skip_special_tokens = true;
  // Scheduling priority passed to the router.
  int priority = 0;
  std::string user;
  // Client-chosen "request_id" (vLLM extension), else empty.
  std::string request_id;
};

// Parses a /v1/chat/completions body.
absl::StatusOr<GenerationRequest> ParseChatRequest(const std::string& body,
                                                   const RequestLimits& limits);

// Parses a /v1/completions body.
absl::StatusOr<GenerationRequest> ParseCompletionRequest(const std::string& body,
                                                         const RequestLimits& limits);

// Parses the JSON body and checks that it is an object nested at most
// kMaxJsonDepth levels deep (checked before parsing: deeper input would
// overflow the stack of whatever walks it next).
absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& body);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_REQUEST_PARSER_H_
