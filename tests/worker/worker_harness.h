// Test harness for worker processes: starts real worker binaries on
// loopback, learns their ports from stdout, and drives them the way a router
// does (handshake, then steps). Test-only.
#ifndef TPSERVE_TESTS_WORKER_WORKER_HARNESS_H_
#define TPSERVE_TESTS_WORKER_WORKER_HARNESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/worker.grpc.pb.h"

namespace tpserve::testing {

// One worker process; killed (SIGKILL) on destruction if still running.
class WorkerProcess {
 public:
  // Runs `command` (binary, then leading arguments) plus `args`; waits
  // (bounded) for its "listening on port N" line.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(
      const std::vector<std::string>& command, const std::vector<std::string>& args);
  ~WorkerProcess();

  // The gRPC port it listens on.
  int port() const { return port_; }
  // Its client stub.
  v1::Worker::Stub& stub() { return *stub_; }
  // Sends `signal`.
  void Signal(int signal);
  // Waits up to `timeout_ms` for exit; returns the exit status (as from
  // waitpid) or DEADLINE_EXCEEDED.
  absl::StatusOr<int> WaitExit(int timeout_ms);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<v1::Worker::Stub> stub_;
};

// What LoadModel is asked for.
struct LoadSpec {
  std::string model_path;
  std::string load_format = "auto";
  int max_model_len = 512;
  int block_size = 16;
};

// A router's view of a worker group.
class WorkerGroup {
 public:
  // Starts `world` workers with `command` (e.g. {"cli/tpserve", "worker"}),
  // --worker-port=0 --device=cpu and `extra`.
  static absl::StatusOr<std::unique_ptr<WorkerGroup>> Start(
      const std::vector<std::string>& command, int world,
      const std::vector<std::string>& extra = {});

  // CreateUniqueId on rank 0, InitDistributed on every rank at once.
  absl::Status InitDistributed(int64_t timeout_ms = 30000);
  // LoadModel on every rank at once (they compare fingerprints); `specs`
  // has one entry per rank or one for all. Returns each rank's status.
  std::vector<absl::Status> LoadModel(const std::vector<LoadSpec>& specs);
  // ProfileMemory on every rank, then InitCache with the minimum (rank 0
  // relaying steps to the others).
  absl::StatusOr<int> InitCache(int64_t cpu_kv_cache_bytes = 64 << 20);
  // The whole handshake; fails on the first error.
  absl::Status Handshake(const LoadSpec& spec);

  // Sends a step to rank 0, which relays it to the other ranks; returns the
  // group's answer or its error.
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& step,
                                        int deadline_ms = 30000);
  // Greedy generation of `n` tokens for one sequence; when `top_logprobs`
  // > 0 the first response's logprobs land in `first` (may be null).
  absl::StatusOr<std::vector<int32_t>> Greedy(const std::vector<int32_t>& prompt, int n,
                                              int top_logprobs = 0,
                                              v1::TokenLogprob* first = nullptr);

  // Rank `r`'s process.
  WorkerProcess& rank(int r) { return *procs_[r]; }
  // Number of ranks.
  int world() const { return static_cast<int>(procs_.size()); }
  // The token of the group InitDistributed formed (empty before).
  const std::string& group_token() const { return token_; }

 private:
  std::vector<std::unique_ptr<WorkerProcess>> procs_;
  int block_size_ = 16;
  uint64_t next_step_ = 1;
  uint64_t next_seq_ = 1;
  std::string token_;
};

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_WORKER_WORKER_HARNESS_H_
