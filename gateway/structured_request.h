// The structured-output fields of a generation request: OpenAI's
// response_format and tool_choice, vLLM's guided_* / structured_outputs,
// logit_bias and allowed_token_ids. Each constraint becomes one grammar spec
// (structured/spec.h) in SamplingParams.structured_output, validated here by
// compiling it, so an unsupported or invalid schema or regex is a 400 naming
// the field.
#ifndef TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_
#define TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "gateway/request_parser.h"

namespace tpserve::gateway {

// response_format, guided_json / guided_regex / guided_choice /
// guided_grammar, structured_outputs, logit_bias, allowed_token_ids (both
// endpoints). At most one output constraint per request.
absl::Status ParseStructuredOutput(const nlohmann::ordered_json& body, const RequestLimits& limits,
                                   GenerationRequest* req);

// Chat: tool_choice ("none", "auto", "required" or a named function) and
// parallel_tool_calls, after req->tools is parsed. "required" and a named
// function constrain the output to Qwen <tool_call> blocks whose arguments
// match the functions' parameters.
absl::Status ParseToolChoice(const nlohmann::ordered_json& body, GenerationRequest* req);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_STRUCTURED_REQUEST_H_
