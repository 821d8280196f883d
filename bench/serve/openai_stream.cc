#include "bench/serve/openai_stream.h"

#include "absl/strings/str_cat.h"

namespace tpserve::bench {
namespace {

constexpr size_t kMaxErrorBody = 4096;

// The message of an OpenAI error body, else the body itself, shortened.
std::string ErrorMessage(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    const auto err = j.find("error");
    if (err != j.end() && err->is_object() && err->contains("message") &&
        (*err)["message"].is_string()) {
      return (*err)["message"].get<std::string>();
    }
    if (err != j.end() && err->is_string()) return err->get<std::string>();
  }
  std::string text = body.substr(0, 200);
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

std::string BuildRequestBody(ApiKind kind, const std::string& model, const SampleRequest& request,
                             const nlohmann::json& params) {
  nlohmann::json body = {{"model", model},
                         {"temperature", 0.0},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}}};
  if (kind == ApiKind::kChat) {
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", request.prompt}}});
    body["max_completion_tokens"] = request.expected_output_len;
  } else {
    if (request.prompt_ids.empty()) {
      body["prompt"] = request.prompt;
    } else {
      body["prompt"] = request.prompt_ids;
    }
    body["max_tokens"] = request.expected_output_len;
    body["repetition_penalty"] = 1.0;
  }
  body.update(params);
  return body.dump();
}

StreamReader::StreamReader(ApiKind kind, int prompt_len, double start_time) : kind_(kind) {
  out_.prompt_len = prompt_len;
  out_.start_time = start_time;
  last_chunk_ = start_time;
}

void StreamReader::OnData(std::string_view bytes, double now, long http_status) {
  if (http_status != 200) {
    if (error_body_.size() < kMaxErrorBody) {
      error_body_.append(bytes.substr(0, kMaxErrorBody - error_body_.size()));
    }
    return;
  }
  if (!error_.empty()) return;
  sse_.Feed(bytes, [&](std::string_view data) { OnEvent(data, now); });
}

void StreamReader::OnEvent(std::string_view data, double now) {
  if (done_ || !error_.empty()) return;
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    Fail(absl::StrCat("unparseable chunk: ", std::string(data.substr(0, 120))));
    return;
  }
  if (auto err = j.find("error"); err != j.end() && !err->is_null()) {
    Fail(absl::StrCat("error in stream: ", ErrorMessage(std::string(data))));
    return;
  }
  const auto choices = j.find("choices");
  if (choices != j.end() && choices->is_array() && !choices->empty()) {
    const nlohmann::json& c = (*choices)[0];
    const nlohmann::json* text = nullptr;
    if (kind_ == ApiKind::kChat) {
      if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
        if (auto t = d->find("content"); t != d->end()) text = &*t;
      }
    } else if (auto t = c.find("text"); t != c.end()) {
      text = &*t;
    }
    if (!first_chunk_) {
      first_chunk_ = true;
      out_.ttft = now - out_.start_time;
    } else {
      out_.itl.push_back(now - last_chunk_);
    }
    last_chunk_ = now;
    if (text != nullptr && text->is_string()) out_.generated_text += text->get<std::string>();
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    if (auto ct = u->find("completion_tokens"); ct != u->end() && ct->is_number_integer()) {
      out_.output_tokens = ct->get<int>();
    }
  }
}

void StreamReader::Fail(std::string error) {
  if (error_.empty()) error_ = std::move(error);
}

RequestOutput StreamReader::Finish(const std::string& transport_error, long http_status,
                                   double now) {
  if (http_status == 200 && error_.empty()) {
    sse_.Finish([&](std::string_view data) { OnEvent(data, now); });
  }
  if (!transport_error.empty()) {
    Fail(transport_error);
  } else if (http_status != 200) {
    Fail(absl::StrCat("HTTP ", http_status, ": ", ErrorMessage(error_body_)));
  } else if (!first_chunk_) {
    Fail("the stream carried no chunk with a choice");
  } else if (!done_) {
    Fail("the stream ended before data: [DONE]");
  }
  out_.http_status = http_status;
  out_.success = error_.empty();
  out_.error = error_;
  out_.latency = last_chunk_ - out_.start_time;
  return std::move(out_);
}

}  // namespace tpserve::bench
