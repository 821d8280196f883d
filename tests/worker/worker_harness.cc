#include "tests/worker/worker_harness.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/security/group_token.h"
#include "worker/service/step_stream_client.h"

namespace tpserve::testing {
namespace {

constexpr char kPortLine[] = "listening on port ";

void SetDeadline(grpc::ClientContext* ctx, int ms) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

// Runs fn(r) for every rank on its own thread (collective calls must reach
// all ranks at once).
template <typename Fn>
void OnAllRanks(int world, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back(fn, r);
  for (auto& t : threads) t.join();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(
    const std::vector<std::string>& command, const std::vector<std::string>& args) {
  const std::string& binary = command.at(0);
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv;
    for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  auto proc = std::unique_ptr<WorkerProcess>(new WorkerProcess());
  proc->pid_ = pid;
  // Read stdout until the port line, for at most 60 s.
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (text.find('\n', text.find(kPortLine)) == std::string::npos ||
         text.find(kPortLine) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{out[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      close(out[0]);
      return absl::DeadlineExceededError(
          absl::StrCat(binary, " did not print its port; stdout so far: ", text));
    }
    char buf[256];
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) {
      close(out[0]);
      return absl::UnavailableError(
          absl::StrCat(binary, " exited before listening; stdout: ", text));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  // The worker prints nothing else on stdout; closing our end is safe.
  close(out[0]);
  const size_t at = text.find(kPortLine) + sizeof(kPortLine) - 1;
  const std::string digits = text.substr(at, text.find('\n', at) - at);
  if (!absl::SimpleAtoi(digits, &proc->port_)) {
    return absl::InternalError(absl::StrCat("bad port line: ", text));
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", proc->port_),
                                     grpc::InsecureChannelCredentials());
  proc->stub_ = v1::Worker::NewStub(channel);
  return proc;
}

WorkerProcess::~WorkerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void WorkerProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

absl::StatusOr<int> WorkerProcess::WaitExit(int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError("worker did not exit in time");
}

absl::StatusOr<std::unique_ptr<WorkerGroup>> WorkerGroup::Start(
    const std::vector<std::string>& command, int world,
    const std::vector<std::string>& extra) {
  auto group = std::unique_ptr<WorkerGroup>(new WorkerGroup());
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> args = {"--worker-port=0", "--device=cpu",
                                     "--log-level=warning"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto proc = WorkerProcess::Start(command, args);
    if (!proc.ok()) return proc.status();
    group->procs_.push_back(std::move(*proc));
  }
  return group;
}

absl::Status WorkerGroup::InitDistributed(int64_t timeout_ms) {
  token_ = NewGroupToken();
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10000);
  v1::CreateUniqueIdResponse id;
  grpc::Status s = procs_[0]->stub().CreateUniqueId(&ctx, {}, &id);
  if (!s.ok()) return FromGrpcStatus(s);
  std::vector<absl::Status> results(world());
  OnAllRanks(world(), [&](int r) {
    grpc::ClientContext c;
    SetDeadline(&c, static_cast<int>(timeout_ms) + 10000);
    v1::InitDistributedRequest req;
    req.set_rank(r);
    req.set_world_size(world());
    req.set_unique_id(id.unique_id());
    req.set_timeout_ms(timeout_ms);
    req.set_group_token(token_);
    v1::InitDistributedResponse resp;
    results[r] = FromGrpcStatus(procs_[r]->stub().InitDistributed(&c, req, &resp));
  });
  for (const auto& st : results) {
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

std::vector<absl::Status> WorkerGroup::LoadModel(const std::vector<LoadSpec>& specs) {
  std::vector<absl::Status> results(world());
  block_size_ = specs[0].block_size;
  OnAllRanks(world(), [&](int r) {
    const LoadSpec& spec = specs.size() == 1 ? specs[0] : specs[r];
    grpc::ClientContext c;
    SetDeadline(&c, 120000);
    AttachGroupToken(&c, token_);
    v1::LoadModelRequest req;
    req.set_model_path(spec.model_path);
    req.set_load_format(spec.load_format);
    req.set_max_model_len(spec.max_model_len);
    req.set_block_size(spec.block_size);
    req.set_max_num_seqs(8);
    req.set_max_num_batched_tokens(1024);
    v1::LoadModelResponse resp;
    results[r] = FromGrpcStatus(procs_[r]->stub().LoadModel(&c, req, &resp));
  });
  return results;
}

absl::StatusOr<int> WorkerGroup::InitCache(int64_t cpu_kv_cache_bytes) {
  // Profiling runs a worst-case step, which has collectives on TP > 1: all
  // ranks at once, as a router does.
  std::vector<absl::Status> results(world());
  std::vector<v1::ProfileMemoryResponse> profiles(world());
  OnAllRanks(world(), [&](int r) {
    grpc::ClientContext c;
    SetDeadline(&c, 60000);
    AttachGroupToken(&c, token_);
    v1::ProfileMemoryRequest req;
    req.set_cpu_kv_cache_bytes(cpu_kv_cache_bytes);
    results[r] = FromGrpcStatus(procs_[r]->stub().ProfileMemory(&c, req, &profiles[r]));
  });
  int blocks = INT_MAX;
  for (int r = 0; r < world(); ++r) {
    if (!results[r].ok()) return results[r];
    blocks = std::min(blocks, profiles[r].num_blocks());
  }
  OnAllRanks(world(), [&](int r) {
    grpc::ClientContext c;
    SetDeadline(&c, 60000);
    AttachGroupToken(&c, token_);
    v1::InitCacheRequest req;
    req.set_num_blocks(blocks);
    if (r == 0) {  // rank 0 relays every step to the others, as for a router
      for (int peer = 1; peer < world(); ++peer) {
        req.add_relay_to(absl::StrCat("127.0.0.1:", procs_[peer]->port()));
      }
    }
    v1::InitCacheResponse resp;
    results[r] = FromGrpcStatus(procs_[r]->stub().InitCache(&c, req, &resp));
  });
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return blocks;
}

absl::Status WorkerGroup::Handshake(const LoadSpec& spec) {
  if (absl::Status s = InitDistributed(); !s.ok()) return s;
  for (const absl::Status& s : LoadModel({spec})) {
    if (!s.ok()) return s;
  }
  absl::StatusOr<int> blocks = InitCache();
  return blocks.ok() ? absl::OkStatus() : blocks.status();
}

absl::StatusOr<v1::StepResponse> WorkerGroup::Step(const v1::StepRequest& step,
                                                   int deadline_ms) {
  absl::StatusOr<v1::StepResponse> answer =
      worker::StepOnce(procs_[0]->stub(), step, absl::Milliseconds(deadline_ms), token_);
  if (!answer.ok()) {
    return absl::Status(answer.status().code(),
                        absl::StrCat("rank 0: ", answer.status().message()));
  }
  return answer;
}

absl::StatusOr<std::vector<int32_t>> WorkerGroup::Greedy(
    const std::vector<int32_t>& prompt, int n, int top_logprobs, v1::TokenLogprob* first) {
  const uint64_t seq = next_seq_++;
  const int len = static_cast<int>(prompt.size());
  const int blocks = (len + n + block_size_ - 1) / block_size_;
  v1::StepRequest step;
  step.set_step_id(next_step_++);
  v1::NewSequence* ns = step.add_new_sequences();
  ns->set_seq_id(seq);
  ns->mutable_token_ids()->Add(prompt.begin(), prompt.end());
  ns->set_num_prompt_tokens(len);
  ns->set_num_scheduled_tokens(len);
  for (int b = 0; b < blocks; ++b) ns->add_block_table(b);
  ns->mutable_sampling()->set_top_logprobs(top_logprobs);
  ns->mutable_sampling()->set_ignore_eos(true);
  ns->mutable_sampling()->set_seed(1);
  std::vector<int32_t> out;
  while (true) {
    absl::StatusOr<v1::StepResponse> resp = Step(step);
    if (!resp.ok()) return resp.status();
    if (resp->sampled_size() != 1 || resp->sampled(0).seq_id() != seq) {
      return absl::InternalError(absl::StrCat("expected one sample for sequence ", seq,
                                              ", got ", resp->ShortDebugString()));
    }
    if (out.empty() && first != nullptr) *first = resp->sampled(0).logprob();
    out.push_back(resp->sampled(0).token_id());
    if (static_cast<int>(out.size()) == n) break;
    // The workers continue from the token they sampled.
    step.Clear();
    step.set_step_id(next_step_++);
    v1::RunningSequence* rs = step.add_running_sequences();
    rs->set_seq_id(seq);
    rs->set_num_scheduled_tokens(1);
  }
  // Free the sequence (and its blocks) with an otherwise empty step.
  v1::StepRequest finish;
  finish.set_step_id(next_step_++);
  finish.add_finished_seq_ids(seq);
  absl::StatusOr<v1::StepResponse> done = Step(finish);
  if (!done.ok()) return done.status();
  return out;
}

}  // namespace tpserve::testing
