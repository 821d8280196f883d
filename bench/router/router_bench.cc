// Router cost per step with 256 running sequences (decode steady state) and
// instant workers: schedule + build the StepRequest, serialize, write it to
// every rank's step stream, collect the answers, update. Steps are planned
// one ahead, as the engine does (depth 2); depth 1 (each step answered before
// the next is planned) is measured too. Prints one table row per
// configuration. Usage: router_bench [steps] [sequences] [prompt_tokens]
// [only_tp] (only_tp > 0: just the step-stream rows of that TP size, e.g.
// to run under perf or strace).
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "proto/worker.pb.h"
#include "router/scheduler.h"
#include "router/testing/fake_worker.h"
#include "router/testing/toy_worker_state.h"
#include "router/worker_group.h"

namespace tpserve::router {
namespace {

constexpr int kVocab = 32000;
constexpr int kBlockSize = 16;
constexpr int kNumBlocks = 1 << 16;
constexpr int kMaxModelLen = 8192;
// Timed steps are split into this many batches; the quietest one counts.
constexpr int kBatches = 10;

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

SchedulerConfig Config() {
  SchedulerConfig c;
  c.num_blocks = kNumBlocks;
  c.block_size = kBlockSize;
  c.max_model_len = kMaxModelLen;
  c.max_num_seqs = 256;
  c.max_num_batched_tokens = 8192;
  c.max_queued_requests = 100000;
  c.vocab_size = kVocab;
  return c;
}

void AddRequests(Scheduler* s, int seqs, int prompt_tokens) {
  for (int i = 0; i < seqs; ++i) {
    v1::GenerateRequest r;
    // Distinct prompts: no prefix sharing flatters nothing.
    for (int t = 0; t < prompt_tokens; ++t) {
      r.add_prompt_token_ids((i * 7919 + t * 31) % kVocab);
    }
    r.mutable_sampling()->set_max_tokens(kMaxModelLen - prompt_tokens);
    r.mutable_sampling()->set_ignore_eos(true);
    if (!s->Add(r, absl::InfiniteFuture()).ok()) std::abort();
  }
}

// How steps reach the workers: send writes one step, receive returns the
// answer to the oldest step sent.
struct Transport {
  std::function<absl::Status(const v1::StepRequest&)> send;
  std::function<absl::Status(v1::StepResponse*)> receive;
};

struct Row {
  double wall_us = 0;
  double thread_cpu_us = 0;
  double process_cpu_us = 0;
  double schedule_us = 0;
  double request_bytes = 0;
};

[[noreturn]] void Die(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what, std::string(status.message()).c_str());
  std::exit(1);
}

// Prefills until every sequence decodes, then times `steps` decode steps
// with `depth` steps in flight at most.
Row Measure(int steps, int seqs, int prompt_tokens, int depth,
            const Transport& transport) {
  Scheduler s(Config());
  AddRequests(&s, seqs, prompt_tokens);
  // As the engine does: plans and the answer keep their allocations.
  std::deque<StepPlan> in_flight;
  std::vector<StepPlan> spare;
  v1::StepResponse answer;
  std::vector<SequenceOutput> out;
  int last_tokens = 0;
  double bytes = 0;
  auto update_oldest = [&](double* compute_seconds) {
    if (absl::Status st = transport.receive(&answer); !st.ok()) Die("step failed", st);
    const double t0 = ThreadCpuSeconds();
    if (!s.Update(in_flight.front(), answer, &out).ok()) std::abort();
    if (compute_seconds != nullptr) *compute_seconds += ThreadCpuSeconds() - t0;
    spare.push_back(std::move(in_flight.front()));
    in_flight.pop_front();
    out.clear();
  };
  auto step = [&](double* compute_seconds) {
    const double t0 = ThreadCpuSeconds();
    StepPlan plan;
    if (!spare.empty()) {
      plan = std::move(spare.back());
      spare.pop_back();
    }
    s.Schedule(absl::Now(), &plan, &out);
    // Router-side compute only (thread CPU): schedule (building the
    // StepRequest) and update, without the worker round trip.
    if (compute_seconds != nullptr) *compute_seconds += ThreadCpuSeconds() - t0;
    if (plan.needs_sync || plan.empty()) std::abort();  // The cache is huge.
    if (absl::Status st = transport.send(plan.request); !st.ok()) {
      Die("send failed", st);
    }
    last_tokens = plan.num_scheduled_tokens;
    bytes += plan.request.ByteSizeLong();
    in_flight.push_back(std::move(plan));
    while (static_cast<int>(in_flight.size()) >= depth) {
      update_oldest(compute_seconds);
    }
  };
  // Warm up: prefill everything, then a few decode steps.
  while (last_tokens != seqs || s.num_waiting() > 0) step(nullptr);
  for (int i = 0; i < 20; ++i) step(nullptr);

  // The dev box is shared: report the quietest of several batches.
  Row row;
  row.process_cpu_us = 1e30;
  const int batch = std::max(1, steps / kBatches);
  for (int b = 0; b < kBatches; ++b) {
    double compute_seconds = 0;
    bytes = 0;
    const absl::Time wall0 = absl::Now();
    const double cpu0 = ThreadCpuSeconds();
    const double pcpu0 = ProcessCpuSeconds();
    for (int i = 0; i < batch; ++i) step(&compute_seconds);
    const double pcpu = (ProcessCpuSeconds() - pcpu0) / batch * 1e6;
    if (pcpu >= row.process_cpu_us) continue;
    row.process_cpu_us = pcpu;
    row.wall_us = absl::ToDoubleSeconds(absl::Now() - wall0) / batch * 1e6;
    row.thread_cpu_us = (ThreadCpuSeconds() - cpu0) / batch * 1e6;
    row.schedule_us = compute_seconds / batch * 1e6;
    row.request_bytes = bytes / batch;
  }
  while (!in_flight.empty()) update_oldest(nullptr);
  if (last_tokens != seqs) std::abort();
  return row;
}

}  // namespace
}  // namespace tpserve::router

int main(int argc, char** argv) {
  using namespace tpserve::router;
  const int steps = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int seqs = argc > 2 ? std::atoi(argv[2]) : 256;
  const int prompt = argc > 3 ? std::atoi(argv[3]) : 512;
  const int only_tp = argc > 4 ? std::atoi(argv[4]) : 0;
  // Workers run in child processes, forked before this process touches gRPC,
  // so that this process's CPU time is the router's alone.
  std::vector<pid_t> children;
  std::vector<std::string> worker_addresses;
  for (int r = 0; r < 8; ++r) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      testing::FakeWorkerOptions o;
      o.vocab_size = kVocab;
      o.num_blocks = kNumBlocks;
      o.strict = false;
      auto w = testing::FakeWorker::Start(o);
      if (!w.ok()) _exit(1);
      const std::string address = (*w)->address();
      if (write(fds[1], address.data(), address.size()) < 0) _exit(1);
      close(fds[1]);
      pause();
      _exit(0);
    }
    close(fds[1]);
    char buffer[64] = {};
    const ssize_t n = read(fds[0], buffer, sizeof(buffer) - 1);
    close(fds[0]);
    if (n <= 0) return 1;
    children.push_back(pid);
    worker_addresses.emplace_back(buffer, n);
  }
  std::printf("router step cost, %d running sequences (decode), prompt %d, "
              "%d timed steps; per step, quietest of %d batches\n\n",
              seqs, prompt, steps, kBatches);
  std::printf("| workers | wall us/step | step-loop thread CPU us/step | "
              "router process CPU us/step | schedule+update CPU us/step | "
              "StepRequest bytes |\n");
  std::printf("|---|---|---|---|---|---|\n");
  auto print = [](const std::string& name, const Row& r) {
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f |\n", name.c_str(),
                r.wall_us, r.thread_cpu_us, r.process_cpu_us, r.schedule_us,
                r.request_bytes);
    std::fflush(stdout);
  };

  // In-process: the toy worker (its cost included here) is called directly,
  // after a serialize/parse round trip so that the wire encoding is still
  // paid.
  if (only_tp == 0) {
    testing::ToyWorkerState worker(kVocab, kBlockSize, kNumBlocks,
                                   /*check_kv=*/false);
    std::deque<tpserve::v1::StepResponse> answers;
    std::string wire;
    Transport local;
    local.send = [&](const tpserve::v1::StepRequest& request) -> absl::Status {
      request.SerializeToString(&wire);
      tpserve::v1::StepRequest parsed;
      parsed.ParseFromString(wire);
      auto answer = worker.Step(parsed);
      if (!answer.ok()) return answer.status();
      answer->SerializeToString(&wire);
      answers.emplace_back().ParseFromString(wire);
      return absl::OkStatus();
    };
    local.receive = [&](tpserve::v1::StepResponse* r) {
      *r = std::move(answers.front());
      answers.pop_front();
      return absl::OkStatus();
    };
    print("in-process (serialize + parse, no gRPC)",
          Measure(steps, seqs, prompt, 2, local));
  }
  for (int depth : {2, 1}) {
    for (int tp : {1, 2, 4, 8}) {
      if (only_tp > 0 && tp != only_tp) continue;
      tpserve::ServerConfig config;
      for (int r = 0; r < tp; ++r) config.workers.push_back(worker_addresses[r]);
      config.tensor_parallel_size = tp;
      config.block_size = kBlockSize;
      config.max_model_len = kMaxModelLen;
      auto group = WorkerGroup::Create(config);
      if (!group.ok()) return 1;
      if (absl::Status s = (*group)->Handshake().status(); !s.ok()) {
        std::fprintf(stderr, "handshake: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      Transport streams;
      streams.send = [&](const tpserve::v1::StepRequest& request) {
        return (*group)->Send(request);
      };
      streams.receive = [&](tpserve::v1::StepResponse* r) {
        return (*group)->Receive(r);
      };
      print(std::string("step streams, ") +
                (depth == 2 ? "one step ahead" : "one step at a time") +
                ", TP=" + std::to_string(tp),
            Measure(steps, seqs, prompt, depth, streams));
    }
  }
  for (pid_t pid : children) kill(pid, SIGTERM);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  return 0;
}
