// POST /v1/chat/completions and /v1/completions: parse, tokenize, check the
// length, run the router calls (Generation) and answer as one JSON object or
// as an SSE stream.

#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "gateway/generation.h"
#include "gateway/http_error.h"
#include "gateway/http_handlers.h"
#include "gateway/random_id.h"
#include "gateway/structured_request.h"
#include "gateway/tool_calls.h"

namespace tpserve::gateway {
namespace {

// The request's usage from its choices' (n per prompt, in prompt order):
// each prompt counts once, whatever n is (as vLLM counts it).
UsageCounts TotalUsage(const std::vector<UsageCounts>& usage, int n) {
  UsageCounts total;
  for (size_t i = 0; i < usage.size(); ++i) {
    if (i % n == 0) {
      total.prompt_tokens += usage[i].prompt_tokens;
      total.cached_tokens += usage[i].cached_tokens;
    }
    total.completion_tokens += usage[i].completion_tokens;
  }
  return total;
}

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// How long a drain that ran out waits for the aborted responses to be sent.
constexpr std::chrono::seconds kAbortGrace(5);

// Tokenized prompts of a request.
absl::StatusOr<std::vector<std::vector<int>>> Tokenize(const GatewayContext& ctx,
                                                       const GenerationRequest& r) {
  std::vector<std::vector<int>> prompts;
  if (r.chat) {
    TP_ASSIGN_OR_RETURN(std::string text, ctx.text->RenderChat(r.messages, r.tools,
                                                               r.add_generation_prompt,
                                                               r.chat_template_kwargs));
    prompts.push_back(ctx.text->Encode(text, r.add_special_tokens));
  } else {
    for (const std::string& text : r.prompt_texts) {
      prompts.push_back(ctx.text->Encode(text, r.add_special_tokens));
    }
    for (const auto& ids : r.prompt_token_ids) prompts.push_back(ids);
  }
  for (const auto& p : prompts) {
    if (p.empty()) return InvalidField(r.chat ? "messages" : "prompt", "the prompt is empty");
  }
  return prompts;
}

// vLLM's length rules: the prompt must leave room for one token, and
// prompt + max_tokens must fit. An unset max_tokens takes what is left.
absl::Status FitToContext(int max_model_len, int prompt_len, bool chat, int32_t max_new_default,
                          tpserve::v1::SamplingParams* s) {
  if (max_model_len <= 0) return absl::OkStatus();
  if (prompt_len >= max_model_len) {
    return InvalidField(chat ? "messages" : "prompt",
                        absl::StrCat("This model's maximum context length is ", max_model_len,
                                     " tokens. However, your request has ", prompt_len,
                                     " input tokens. Please reduce the length of the input."));
  }
  if (s->max_tokens() == 0) {
    int left = max_model_len - prompt_len;
    s->set_max_tokens(max_new_default > 0 ? std::min(left, max_new_default) : left);
    return absl::OkStatus();
  }
  if (prompt_len + s->max_tokens() > max_model_len) {
    return InvalidField(
        "max_tokens",
        absl::StrCat("This model's maximum context length is ", max_model_len,
                     " tokens. However, you requested ", prompt_len + s->max_tokens(),
                     " tokens (", prompt_len, " in the ", chat ? "messages" : "prompt", ", ",
                     s->max_tokens(), " in the completion). Please reduce the length of the ",
                     chat ? "messages" : "prompt", " or completion."));
  }
  return absl::OkStatus();
}

// State of one streamed response, alive until the connection is done with it.
struct StreamState {
  GatewayContext* ctx = nullptr;
  GenerationRequest request;
  ResponseHeader header;
  std::unique_ptr<Generation> generation;
  std::optional<SequenceEvent> first;
  uint64_t watch_id = 0;
  bool watching = false;
  std::vector<UsageCounts> usage;  // per choice
  int n = 1;
  std::map<int, int> text_offsets;  // completions logprobs offsets per choice
  std::map<int, ToolCallStream> tool_streams;  // chat with tools, per choice

  ~StreamState() {
    if (watching) ctx->watcher->Unwatch(watch_id);
    generation.reset();  // cancels what still runs, waits for gRPC to let go
    ctx->in_flight.fetch_sub(1);
    ctx->metrics->in_flight->Decrement();
  }

  UsageCounts Total() const { return TotalUsage(usage, n); }

  json ChunkFor(const SequenceEvent& e) {
    json finish = e.finish_reason.has_value() ? json(*e.finish_reason) : json(nullptr);
    json chunk;
    if (request.chat) {
      json delta = json::object();
      if (!e.text.empty() || !e.logprobs.empty()) delta["content"] = e.text;
      json lp = request.sampling.logprobs() && !e.logprobs.empty() ? ChatLogprobsJson(e.logprobs)
                                                                   : json(nullptr);
      chunk = ChatChunkJson(header, e.index, delta, lp, finish, e.stop_reason);
    } else {
      json lp = nullptr;
      if (request.completion_logprobs) {
        lp = CompletionLogprobsJson(e.logprobs, text_offsets[e.index]);
        for (const auto& l : e.logprobs) text_offsets[e.index] += static_cast<int>(l.token.size());
      }
      chunk = CompletionChunkJson(header, e.index, e.text, lp, finish, e.stop_reason);
    }
    AddUsage(chunk, e.usage);
    return chunk;
  }

  // include_usage puts "usage" on every chunk: null, or the counts so far
  // with continuous_usage_stats.
  void AddUsage(json& chunk, const UsageCounts& counts) const {
    if (request.include_usage) chunk["usage"] = request.continuous_usage ? UsageJson(counts) : json(nullptr);
  }

  // Chat with tools: content passes through ToolCallStream; at the end the
  // calls go out as one tool_calls delta before the finish chunk. False if
  // the client went away.
  template <typename Send>
  bool SendWithToolCalls(SequenceEvent& event, const Send& send) {
    ToolCallStream& stream = tool_streams[event.index];
    event.text = stream.Feed(event.text);
    if (!event.finish_reason.has_value()) {
      return (event.text.empty() && event.logprobs.empty()) || send(SseData(ChunkFor(event)));
    }
    ToolCallOutput rest = stream.Finish();
    event.text += rest.content.value_or("");
    if (rest.calls.empty()) return send(SseData(ChunkFor(event)));
    SequenceEvent content = event;  // the text before the calls, without the finish
    content.finish_reason.reset();
    content.stop_reason = nullptr;
    if ((!content.text.empty() || !content.logprobs.empty()) && !send(SseData(ChunkFor(content)))) return false;
    json calls = ChatChunkJson(header, event.index, {{"tool_calls", ToolCallsJson(rest.calls, true)}}, nullptr,
                               nullptr);
    AddUsage(calls, event.usage);
    if (!send(SseData(calls))) return false;
    event.text.clear();
    event.logprobs.clear();
    event.finish_reason = "tool_calls";
    return send(SseData(ChunkFor(event)));
  }

  // Writes the whole stream; false if the client went away.
  bool Write(const BodyWriter& send) {
    if (request.chat) {
      for (int i = 0; i < generation->size(); ++i) {
        json role = ChatChunkJson(header, i, {{"role", "assistant"}, {"content", ""}}, nullptr,
                                  nullptr);
        if (request.include_usage) role["usage"] = nullptr;
        if (!send(SseData(role))) return false;
      }
    }
    SequenceEvent event;
    bool have = first.has_value();
    if (have) event = std::move(*first);
    while (have || generation->Next(&event)) {
      have = false;
      if (!event.error.ok()) {
        // Headers are gone; report in-band as vLLM does, then end the stream.
        if (!send("data: " + ErrorBody(event.error) + "\n\n")) return false;
        generation->Cancel();
        break;
      }
      usage[event.index] = event.usage;
      if (request.chat && request.parse_tool_calls) {
        if (!SendWithToolCalls(event, send)) return false;
        continue;
      }
      bool empty = event.text.empty() && event.logprobs.empty() && !event.finish_reason;
      if (!empty && !send(SseData(ChunkFor(event)))) return false;
    }
    if (request.include_usage && !send(SseData(UsageChunkJson(header, request.chat, Total())))) {
      return false;
    }
    return send(kSseDone);
  }
};

// Collects every event into the non-streaming response.
absl::StatusOr<json> CollectResponse(Generation& gen, const GenerationRequest& r,
                                     const ResponseHeader& header, int n) {
  std::vector<ChoiceResult> choices(gen.size());
  std::vector<UsageCounts> usage(gen.size());
  for (int i = 0; i < gen.size(); ++i) {
    choices[i].index = i;
    choices[i].has_logprobs = r.chat ? r.sampling.logprobs() : r.completion_logprobs;
  }
  SequenceEvent e;
  while (gen.Next(&e)) {
    if (!e.error.ok()) return e.error;
    ChoiceResult& c = choices[e.index];
    c.text += e.text;
    c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    usage[e.index] = e.usage;
    if (e.finish_reason.has_value()) {
      c.finish_reason = *e.finish_reason;
      c.stop_reason = e.stop_reason;
    }
  }
  if (r.chat && r.parse_tool_calls) {
    for (ChoiceResult& c : choices) {
      ToolCallOutput parsed = ParseToolCalls(c.text);
      if (parsed.calls.empty()) continue;
      c.tool_calls = std::move(parsed.calls);
      c.null_content = !parsed.content.has_value();
      c.text = parsed.content.value_or("");
      c.finish_reason = "tool_calls";
    }
  }
  const UsageCounts total = TotalUsage(usage, n);
  return r.chat ? ChatCompletionJson(header, choices, total)
                : CompletionJson(header, choices, total);
}

}  // namespace

void HandleGenerate(GatewayContext& ctx, bool chat, const HttpRequest& req, HttpResponse& res) {
  const Clock::time_point arrival = Clock::now();
  if (ctx.draining.load()) {
    WriteError(absl::UnavailableError("the gateway is shutting down"), res);
    return;
  }
  auto parsed = chat ? ParseChatRequest(req.body, ctx.limits())
                     : ParseCompletionRequest(req.body, ctx.limits());
  if (!parsed.ok()) return WriteError(parsed.status(), res);
  GenerationRequest& r = *parsed;
  auto prompts = Tokenize(ctx, r);
  if (!prompts.ok()) return WriteError(prompts.status(), res);
  absl::Status bad_words = EncodeBadWords(
      r.bad_words, [&](const std::string& text) { return ctx.text->Encode(text, false); }, &r.sampling);
  if (!bad_words.ok()) return WriteError(bad_words, res);

  int max_model_len = ctx.max_model_len();
  int max_new_default = ctx.text->generation_config().max_new_tokens.value_or(0);
  std::vector<SequenceSpec> specs;
  for (size_t p = 0; p < prompts->size(); ++p) {
    tpserve::v1::SamplingParams sampling = r.sampling;
    absl::Status fit = FitToContext(max_model_len, static_cast<int>((*prompts)[p].size()), chat,
                                    max_new_default, &sampling);
    if (!fit.ok()) return WriteError(fit, res);
    for (int i = 0; i < r.n; ++i) {
      SequenceSpec spec;
      spec.index = static_cast<int>(p) * r.n + i;
      spec.prompt_token_ids = (*prompts)[p];
      spec.sampling = sampling;
      // n samples of one seeded request must differ but stay reproducible.
      if (sampling.has_seed()) spec.sampling.set_seed(sampling.seed() + i);
      spec.priority = r.priority;
      spec.stop = r.stop;
      spec.skip_special_tokens = r.skip_special_tokens;
      specs.push_back(std::move(spec));
    }
  }

  ResponseHeader header;
  header.id = r.request_id.empty() ? RandomId(chat ? "chatcmpl-" : "cmpl-") : r.request_id;
  header.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  header.model = r.model;

  auto state = std::make_shared<StreamState>();
  state->ctx = &ctx;
  ctx.in_flight.fetch_add(1);
  ctx.metrics->in_flight->Increment();
  state->n = r.n;
  state->usage.resize(specs.size());
  state->header = header;
  state->generation = std::make_unique<Generation>(ctx.routers.get(), ctx.text.get(),
                                                   ctx.metrics.get(), header.id, std::move(specs),
                                                   arrival, &ctx.generations);
  state->request = std::move(r);
  // A client that hangs up cancels the router calls at once.
  int fd = DisconnectWatcher::FindConnectionFd(req.remote_addr, req.remote_port, req.local_port);
  if (fd >= 0) {
    Generation* gen = state->generation.get();
    state->watch_id = ctx.watcher->Watch(fd, [gen] { gen->Cancel(); });
    state->watching = true;
  }
  state->generation->Start();

  if (!state->request.stream) {
    auto body = CollectResponse(*state->generation, state->request, header, state->request.n);
    if (!body.ok()) return WriteError(body.status(), res);
    res.SetContent(DumpJson(*body), "application/json");
    return;
  }
  // Wait for the first event so that errors before any token (full queue,
  // no router) still get a real HTTP status.
  SequenceEvent first;
  if (state->generation->Next(&first)) {
    if (!first.error.ok()) return WriteError(first.error, res);
    state->first = std::move(first);
  }
  res.headers.emplace_back("Cache-Control", "no-cache");
  res.content_type = "text/event-stream";
  res.stream = [state](const BodyWriter& write) {
    if (state->Write(write)) return true;
    state->generation->Cancel();
    return false;
  };
  res.on_done = [state] { state->generation->Cancel(); };
}

void DrainGenerations(GatewayContext& ctx, std::chrono::milliseconds timeout) {
  if (ctx.generations.WaitIdle(timeout)) return;
  spdlog::warn("gateway: {} request(s) still running after the drain timeout; ending them",
               ctx.generations.size());
  ctx.generations.AbortAll(absl::UnavailableError("the gateway is shutting down"));
  // Long enough for the error events to reach clients that read; a client
  // that stopped reading is cut when the server stops.
  if (!ctx.generations.WaitIdle(kAbortGrace)) {
    spdlog::warn("gateway: {} response(s) not finished after the abort",
                 ctx.generations.size());
  }
}

}  // namespace tpserve::gateway
