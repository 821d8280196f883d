#include "gateway/gateway_metrics.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace tpserve::gateway {

absl::StatusOr<std::unique_ptr<GatewayMetrics>> GatewayMetrics::Create() {
  auto m = std::make_unique<GatewayMetrics>();
  metrics::Registry& r = m->registry;
  TP_ASSIGN_OR_RETURN(m->http_requests,
                      r.AddCounter("tpserve:http_requests_total",
                                   "HTTP requests by endpoint and status code.",
                                   {"endpoint", "status"}));
  TP_ASSIGN_OR_RETURN(m->request_success,
                      r.AddCounter("tpserve:request_success_total",
                                   "Finished generations by finish reason.", {"finished_reason"}));
  TP_ASSIGN_OR_RETURN(auto* prompt, r.AddCounter("tpserve:prompt_tokens_total",
                                                 "Prompt tokens sent to routers."));
  TP_ASSIGN_OR_RETURN(m->prompt_tokens, prompt->Get());
  TP_ASSIGN_OR_RETURN(auto* generation, r.AddCounter("tpserve:generation_tokens_total",
                                                     "Tokens generated."));
  TP_ASSIGN_OR_RETURN(m->generation_tokens, generation->Get());
  TP_ASSIGN_OR_RETURN(auto* in_flight, r.AddGauge("tpserve:num_requests_in_flight",
                                                  "Generation requests being served."));
  TP_ASSIGN_OR_RETURN(m->in_flight, in_flight->Get());
  // vLLM's bucket choices, so dashboards built for vLLM read the same.
  std::vector<double> ttft = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                              0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
  std::vector<double> itl = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                             0.5,  0.75,  1.0,  2.5,   5.0, 7.5,  10.0, 20.0, 40.0, 80.0};
  std::vector<double> e2e = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,  2.5,   5.0,  10.0,  15.0,
                             20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0};
  TP_ASSIGN_OR_RETURN(auto* h1, r.AddHistogram("tpserve:time_to_first_token_seconds",
                                               "Time from request arrival to first token.", ttft));
  TP_ASSIGN_OR_RETURN(m->time_to_first_token, h1->Get());
  TP_ASSIGN_OR_RETURN(auto* h2, r.AddHistogram("tpserve:inter_token_latency_seconds",
                                               "Time between consecutive token messages.", itl));
  TP_ASSIGN_OR_RETURN(m->inter_token_latency, h2->Get());
  TP_ASSIGN_OR_RETURN(auto* h3, r.AddHistogram("tpserve:e2e_request_latency_seconds",
                                               "Time from request arrival to the last token.", e2e));
  TP_ASSIGN_OR_RETURN(m->e2e_latency, h3->Get());
  TP_ASSIGN_OR_RETURN(m->router_running,
                      r.AddGauge("tpserve:router_num_requests_running",
                                 "Requests running on each router (from its Stats).", {"router"}));
  TP_ASSIGN_OR_RETURN(m->router_waiting,
                      r.AddGauge("tpserve:router_num_requests_waiting",
                                 "Requests waiting on each router (from its Stats).", {"router"}));
  TP_ASSIGN_OR_RETURN(m->router_kv_usage,
                      r.AddGauge("tpserve:router_kv_cache_usage_perc",
                                 "KV cache usage of each router, 0..1.", {"router"}));
  TP_ASSIGN_OR_RETURN(m->router_ready, r.AddGauge("tpserve:router_ready",
                                                  "1 if the router was ready at its last poll.",
                                                  {"router"}));
  return m;
}

void GatewayMetrics::CountHttp(const std::string& endpoint, int status) {
  auto counter = http_requests->WithLabels({endpoint, std::to_string(status)});
  if (counter.ok()) (*counter)->Increment();
}

void GatewayMetrics::CountFinished(const std::string& finish_reason) {
  auto counter = request_success->WithLabels({finish_reason});
  if (counter.ok()) (*counter)->Increment();
}

void GatewayMetrics::UpdateRouters(const RouterPool& pool) {
  for (const RouterSnapshot& r : pool.Snapshot()) {
    auto set = [&](metrics::Family<metrics::Gauge>* family, double value) {
      auto gauge = family->WithLabels({r.address});
      if (gauge.ok()) (*gauge)->Set(value);
    };
    set(router_running, r.stats.num_requests_running());
    set(router_waiting, r.stats.num_requests_waiting());
    set(router_kv_usage, r.stats.kv_cache_usage());
    set(router_ready, r.ready ? 1.0 : 0.0);
  }
}

std::string GatewayMetrics::Render(const RouterPool* pool) {
  if (pool == nullptr) return registry.Render();
  UpdateRouters(*pool);
  std::vector<RouterMetricsText> texts;
  for (auto& [address, text] : pool->FetchMetricsTexts()) texts.push_back({address, std::move(text)});
  return registry.Render() + ReexportRouterMetrics(texts);
}

namespace {

// The re-exported family a sample line belongs to, or "" (histogram samples
// carry _bucket, _sum and _count suffixes).
std::string FamilyOf(absl::string_view name) {
  for (const char* family : kReexportedRouterFamilies) {
    absl::string_view f(family);
    if (name == f) return family;
    if (absl::StartsWith(name, f)) {
      absl::string_view suffix = name.substr(f.size());
      if (suffix == "_bucket" || suffix == "_sum" || suffix == "_count") return family;
    }
  }
  return "";
}

}  // namespace

std::string ReexportRouterMetrics(const std::vector<RouterMetricsText>& routers) {
  struct Family {
    // The router whose HELP and TYPE lines are kept (-1: none yet).
    int help_from = -1;
    std::string help_and_type;
    std::string samples;
  };
  std::map<std::string, Family> families;
  for (int i = 0; i < static_cast<int>(routers.size()); ++i) {
    const RouterMetricsText& router = routers[i];
    const std::string label =
        absl::StrCat("router=\"", metrics::EscapeLabelValue(router.address), "\"");
    for (absl::string_view line : absl::StrSplit(router.text, '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "# HELP ") || absl::StartsWith(line, "# TYPE ")) {
        absl::string_view rest = line.substr(7);
        std::string name = FamilyOf(rest.substr(0, rest.find(' ')));
        if (name.empty()) continue;
        Family& family = families[name];
        if (family.help_from < 0) family.help_from = i;
        if (family.help_from == i) absl::StrAppend(&family.help_and_type, line, "\n");
        continue;
      }
      if (absl::StartsWith(line, "#")) continue;
      const size_t name_end = line.find_first_of("{ ");
      if (name_end == absl::string_view::npos) continue;
      std::string family = FamilyOf(line.substr(0, name_end));
      if (family.empty()) continue;
      std::string& out = families[family].samples;
      if (line[name_end] == '{') {
        absl::StrAppend(&out, line.substr(0, name_end + 1), label,
                        line[name_end + 1] == '}' ? "" : ",", line.substr(name_end + 1), "\n");
      } else {
        absl::StrAppend(&out, line.substr(0, name_end), "{", label, "}", line.substr(name_end),
                        "\n");
      }
    }
  }
  std::string out;
  for (const char* name : kReexportedRouterFamilies) {
    auto it = families.find(name);
    if (it == families.end() || it->second.samples.empty()) continue;
    absl::StrAppend(&out, it->second.help_and_type, it->second.samples);
  }
  return out;
}

}  // namespace tpserve::gateway
