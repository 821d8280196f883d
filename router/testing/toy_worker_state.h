// A worker's side of the Step contract, checked strictly, with a toy model:
// the next token is a hash of the last one. Like a real worker it appends
// every token it samples to the sequence, and a later step continues from
// it. Tests use it to prove that what the scheduler sends is exactly what a
// worker needs (incremental blocks, finished ids, prefix hits whose KV
// really holds the same tokens), also when steps are planned one ahead.
#ifndef TPSERVE_ROUTER_TESTING_TOY_WORKER_STATE_H_
#define TPSERVE_ROUTER_TESTING_TOY_WORKER_STATE_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/worker.pb.h"

namespace tpserve::router::testing {

// Per-rank sequence state and a simulated KV cache that records which token
// each slot holds.
class ToyWorkerState {
 public:
  // `num_blocks` KV blocks of `block_size` tokens; tokens in [0, vocab_size).
  // `check_kv` off skips re-reading every earlier position each step (the
  // benchmark's worker must be nearly free).
  ToyWorkerState(int vocab_size, int block_size, int num_blocks,
                 bool check_kv = true);

  // Applies one step; FAILED_PRECONDITION names the first contract violation.
  // Returns the sampled tokens (what rank 0 would send) and their digest
  // (StepResponse.sampled_digest).
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request);

  // The toy model.
  static int32_t NextToken(int32_t last, int vocab_size);

  // Sequences currently held.
  size_t num_sequences() const { return seqs_.size(); }

 private:
  struct Seq {
    std::vector<int32_t> tokens;
    int num_computed = 0;
    std::vector<int32_t> block_table;
  };
  // Checks that the first `n` positions' KV slots hold the sequence's tokens.
  absl::Status CheckKv(uint64_t id, const Seq& seq, int n) const;
  // Computes `n` positions (writes their KV slots); samples at the end.
  absl::Status Compute(uint64_t id, Seq& seq, int n,
                       v1::StepResponse* response);

  const int vocab_size_;
  const int block_size_;
  const bool check_kv_;
  // Token held by each KV slot, -1 when never written.
  std::vector<int32_t> kv_;
  std::map<uint64_t, Seq> seqs_;
};

}  // namespace tpserve::router::testing

#endif  // TPSERVE_ROUTER_TESTING_TOY_WORKER_STATE_H_
