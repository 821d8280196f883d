// The structured-output fields of a generation request: OpenAI's
// response_format and tool_choice, vLLM's guided_* / structured_outputs,
// logit_bias, allowed_token_ids and bad_words. Each constraint becomes one grammar spec
// (structured/spec.h) in SamplingParams.structured_output, validated here by
// compiling it, so an unsupported or invalid schema or regex is a 400 naming
// the field.
#ifndef TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_
#define TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "gateway/request_parser.h"

namespace tpserve::gateway {

// response_format, guided_json / guided_regex / guided_choice /
// guided_grammar, structured_outputs, logit_bias, allowed_token_ids and
// bad_words (into req->bad_words, still text; both endpoints). At most one
// output constraint per request.
absl::Status ParseStructuredOutput(const nlohmann::ordered_json& body, const RequestLimits& limits,
                                   GenerationRequest* req);

// Chat: tool_choice ("none", "auto", "required" or a named function) and
// parallel_tool_calls, after req->tools is parsed. "required" and a named
// function constrain the output to Qwen <tool_call> blocks whose arguments
// match the functions' parameters.
absl::Status ParseToolChoice(const nlohmann::ordered_json& body, GenerationRequest* req);

// Tokenizes bad_words into sampling->bad_words as vLLM does: each word with
// leading whitespace stripped, then with one space before it (its mid-text
// form) when that gives a different first token and as many tokens.
// `encode` is the model's tokenizer without added special tokens. A word of
// more than 32 tokens, or more than 1024 tokens in all, is a 400 naming
// bad_words.
absl::Status EncodeBadWords(const std::vector<std::string>& words,
                            const std::function<std::vector<int>(const std::string&)>& encode,
                            tpserve::v1::SamplingParams* sampling);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_
