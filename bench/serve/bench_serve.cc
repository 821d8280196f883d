#include "bench/serve/bench_serve.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "bench/serve/arrival.h"
#include "bench/serve/dataset.h"
#include "bench/serve/flags.h"
#include "bench/serve/http_client.h"
#include "bench/serve/metrics.h"
#include "bench/serve/report.h"
#include "bench/serve/runner.h"
#include "common/text/tokenizer.h"

namespace tpserve::bench {
namespace {

constexpr int kShownErrors = 3;

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

std::string BaseUrl(const BenchConfig& c) {
  if (!c.base_url.empty()) return std::string(absl::StripSuffix(c.base_url, "/"));
  const bool v6 = c.host.find(':') != std::string::npos;
  return absl::StrCat("http://", v6 ? "[" : "", c.host, v6 ? "]" : "", ":", c.port);
}

// --tokenizer, else a --model folder, else the embedded model's.
std::string TokenizerDir(const BenchConfig& c, const std::string& fallback) {
  if (!c.tokenizer.empty()) return c.tokenizer;
  std::error_code ec;
  if (!c.model.empty() && std::filesystem::exists(c.model + "/tokenizer.json", ec)) return c.model;
  return fallback;
}

std::vector<std::string> Headers(const BenchConfig& c) {
  std::vector<std::string> h;
  std::string key = c.api_key;
  if (key.empty()) {
    if (const char* env = std::getenv("OPENAI_API_KEY")) key = env;
  }
  if (!key.empty()) h.push_back("Authorization: Bearer " + key);
  for (const std::string& kv : c.headers) {
    const size_t eq = kv.find('=');
    h.push_back(absl::StrCat(kv.substr(0, eq), ": ", kv.substr(eq + 1)));
  }
  return h;
}

// The first model the server lists, as vLLM's benchmark picks it.
absl::StatusOr<std::string> ServedModel(HttpClient& client, const std::string& base,
                                        const std::vector<std::string>& headers) {
  const std::string url = base + "/v1/models";
  absl::StatusOr<HttpResponse> r = client.Fetch({url, "", headers});
  if (!r.ok())
    return absl::UnavailableError(absl::StrCat("cannot reach ", url, ": ", r.status().message()));
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": HTTP ", r->status, ": ", r->body.substr(0, 200)));
  }
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id") || !j["data"][0]["id"].is_string()) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": no model listed; pass --model"));
  }
  return j["data"][0]["id"].get<std::string>();
}

nlohmann::json RequestParams(const BenchConfig& c) {
  nlohmann::json p = nlohmann::json::object();
  if (c.ignore_eos || c.dataset_name == "random") p["ignore_eos"] = true;
  p["temperature"] = c.temperature.value_or(0.0);
  if (c.top_p) p["top_p"] = *c.top_p;
  if (c.top_k) p["top_k"] = *c.top_k;
  if (c.min_p) p["min_p"] = *c.min_p;
  if (!c.extra_body.empty()) p.update(nlohmann::json::parse(c.extra_body));
  return p;
}

RequestOutput RunOne(HttpClient& client, const RunInput& all, size_t i) {
  RunInput one;
  one.kind = all.kind;
  one.requests = {all.requests[i]};
  one.prompt_lens = {all.prompt_lens[i]};
  one.arrivals = {0.0};
  return RunRequests(client, one, nullptr).outputs[0];
}

// vLLM's initial test request: retried while the server is not up yet
// (no connection, 503) for up to --ready-check-timeout-sec; any other failure
// (bad key, unknown model, bad request) ends the run at once.
absl::Status ReadyCheck(HttpClient& client, const RunInput& in, int timeout_s) {
  std::printf("Starting initial single prompt test run...\n");
  std::fflush(stdout);
  const double deadline = MonotonicSeconds() + timeout_s;
  bool told = false;
  while (true) {
    RequestOutput o = RunOne(client, in, 0);
    if (o.success) break;
    const bool not_up = o.http_status == 0 || o.http_status == 503;
    if (!not_up || MonotonicSeconds() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("initial test request to ", in.requests[0].url, " failed: ", o.error,
                       not_up ? absl::StrCat(" (still failing after ", timeout_s, " s)") : ""));
    }
    if (!told) {
      std::fprintf(stderr, "waiting up to %d s for %s (%s)\n", timeout_s,
                   in.requests[0].url.c_str(), o.error.c_str());
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::printf("Initial test run completed.\n");
  return absl::OkStatus();
}

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

int RunBenchServe(const std::vector<std::string>& args, const std::string& default_tokenizer_dir) {
  absl::StatusOr<BenchCommandLine> cl = ParseBenchFlags(args);
  if (!cl.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(cl.status().message()).c_str());
    return 2;
  }
  if (cl->help) {
    std::printf("%s", BenchHelpText().c_str());
    return 0;
  }
  const BenchConfig& c = cl->config;
  const ApiKind kind = IsChatEndpoint(c.endpoint) ? ApiKind::kChat : ApiKind::kCompletions;
  const std::string base = BaseUrl(c);
  const std::vector<std::string> headers = Headers(c);

  const std::string tok_dir = TokenizerDir(c, default_tokenizer_dir);
  if (tok_dir.empty())
    return Fail("no tokenizer: pass --tokenizer DIR (a folder with tokenizer.json)");
  absl::StatusOr<std::unique_ptr<text::Tokenizer>> tok = text::Tokenizer::Load(tok_dir);
  if (!tok.ok()) return Fail(absl::StrCat("--tokenizer '", tok_dir, "': ", tok.status().message()));

  const int planned = c.max_concurrency > 0 ? c.max_concurrency : c.num_prompts;
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Create(std::max(64, planned));
  if (!client.ok()) return Fail(std::string(client.status().message()));

  std::string model = c.served_model_name.empty() ? c.model : c.served_model_name;
  if (model.empty()) {
    absl::StatusOr<std::string> m = ServedModel(**client, base, headers);
    if (!m.ok()) return Fail(std::string(m.status().message()));
    model = *m;
  }

  absl::StatusOr<Dataset> data = LoadDataset(**tok, c, kind == ApiKind::kChat);
  if (!data.ok()) return Fail(std::string(data.status().message()));
  if (!data->note.empty()) std::fprintf(stderr, "note: %s\n", data->note.c_str());

  RunInput in;
  in.kind = kind;
  in.max_concurrency = c.max_concurrency;
  const nlohmann::json params = RequestParams(c);
  int64_t planned_in = 0, planned_out = 0;
  for (const SampleRequest& r : data->requests) {
    in.requests.push_back({base + c.endpoint, BuildRequestBody(kind, model, r, params), headers});
    in.prompt_lens.push_back(r.prompt_len);
    planned_in += r.prompt_len;
    planned_out += r.expected_output_len;
  }
  std::printf("#Input tokens: %lld\n#Output tokens: %lld\n", static_cast<long long>(planned_in),
              static_cast<long long>(planned_out));

  if (c.ready_check_timeout_sec > 0) {
    if (absl::Status s = ReadyCheck(**client, in, c.ready_check_timeout_sec); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  if (c.num_warmups > 0) {
    std::printf("Warming up with %d requests...\n", c.num_warmups);
    std::fflush(stdout);
    RunInput warm = in;
    warm.requests.assign(c.num_warmups, in.requests[0]);
    warm.prompt_lens.assign(c.num_warmups, in.prompt_lens[0]);
    warm.arrivals.assign(c.num_warmups, 0.0);
    RunRequests(**client, warm, nullptr);
    std::printf("Warmup run completed.\n");
  }

  std::printf("Starting main benchmark run...\n");
  std::printf("Traffic request rate: %s\n", PyFloat(c.request_rate).c_str());
  std::printf("Burstiness factor: %s (%s)\n", PyFloat(c.burstiness).c_str(),
              c.burstiness == 1.0 ? "Poisson process" : "Gamma distribution");
  std::printf("Maximum request concurrency: %s\n",
              c.max_concurrency > 0 ? std::to_string(c.max_concurrency).c_str() : "None");
  std::fflush(stdout);
  in.arrivals =
      ArrivalTimes(static_cast<int>(in.requests.size()), c.request_rate, c.burstiness, c.seed);
  Progress progress(Progress::ModeFor(stderr, c.disable_tqdm),
                    static_cast<int>(in.requests.size()));
  RunResult run = RunRequests(**client, in, &progress);

  ReportInfo info;
  info.config = c;
  info.model_id = model;
  info.tokenizer_id = tok_dir;
  info.percentile_metrics = *ParsePercentileMetrics(c.percentile_metrics);
  const Slo slo = *ParseGoodput(c.goodput);
  info.goodput = !slo.empty();
  info.duration_s = run.duration_s;
  info.date = Now();
  const text::Tokenizer& t = **tok;
  const BenchmarkMetrics m = ComputeMetrics(
      run.outputs, run.duration_s, *ParseMetricPercentiles(c.metric_percentiles), slo,
      [&t](const std::string& s) { return static_cast<int>(t.Encode(s, false).size()); });
  std::printf("%s", FormatReport(m, info).c_str());
  std::printf("%s", FormatErrors(run.outputs, kShownErrors).c_str());
  std::fflush(stdout);

  if (c.save_result) {
    const std::string path = ResultPath(info);
    std::error_code ec;
    if (!c.result_dir.empty()) std::filesystem::create_directories(c.result_dir, ec);
    std::ofstream out(path);
    out << ResultJson(m, run.outputs, info).dump() << "\n";
    if (!out) return Fail(absl::StrCat("cannot write '", path, "'"));
    std::printf("Results saved to %s\n", path.c_str());
  }
  if (m.failed > 0) {
    const auto first = std::find_if(run.outputs.begin(), run.outputs.end(),
                                    [](const RequestOutput& o) { return !o.success; });
    return Fail(absl::StrCat(m.failed, " of ", run.outputs.size(),
                             " requests failed (first: ", first->error, ")"));
  }
  return 0;
}

}  // namespace tpserve::bench
