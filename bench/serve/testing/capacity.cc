#include "bench/serve/testing/capacity.h"

#include <sys/resource.h>

#include "absl/strings/str_cat.h"
#include "bench/serve/runner.h"
#include "bench/serve/testing/fake_sse_server.h"

namespace tpserve::bench::testing {
namespace {

double ThreadCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

}  // namespace

absl::StatusOr<CapacityResult> RunCapacity(const CapacityOptions& o) {
  FakeServerOptions so;
  so.events_per_write = o.events_per_write;
  so.interval_ms = o.interval_ms;
  so.barrier = o.barrier ? o.streams : 0;
  FakeSseServer server(so);
  if (absl::Status s = server.Start(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Create(o.streams);
  if (!client.ok()) return client.status();
  RunInput in;
  const std::string url = absl::StrCat("http://127.0.0.1:", server.port(), "/v1/completions");
  const std::string body = absl::StrCat(
      R"({"model":"fake","prompt":[1,2,3],"stream":true,"max_tokens":)", o.tokens, "}");
  for (int i = 0; i < o.streams; ++i) {
    in.requests.push_back({url, body, {}});
    in.prompt_lens.push_back(3);
    in.arrivals.push_back(0.0);
  }
  const double cpu0 = ThreadCpuSeconds();
  RunResult run = RunRequests(**client, in, nullptr);
  CapacityResult r;
  r.client_cpu_s = ThreadCpuSeconds() - cpu0;
  r.wall_s = run.duration_s;
  r.server_peak_open = server.peak_open();
  for (const RequestOutput& out : run.outputs) {
    if (!out.success) continue;
    ++r.succeeded;
    r.token_events += 1 + static_cast<int64_t>(out.itl.size());
    r.output_tokens += out.output_tokens;
  }
  return r;
}

}  // namespace tpserve::bench::testing
