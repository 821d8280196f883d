#include "router/testing/toy_worker_state.h"

#include "absl/strings/str_cat.h"

namespace tpserve::router::testing {

ToyWorkerState::ToyWorkerState(int vocab_size, int block_size, int num_blocks,
                               bool check_kv)
    : vocab_size_(vocab_size),
      block_size_(block_size),
      check_kv_(check_kv),
      kv_(static_cast<size_t>(num_blocks) * block_size, -1) {}

int32_t ToyWorkerState::NextToken(int32_t last, int vocab_size) {
  uint64_t x = static_cast<uint64_t>(last) * 0x9e3779b97f4a7c15ULL + 12345;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<int32_t>(x % static_cast<uint64_t>(vocab_size));
}

absl::Status ToyWorkerState::CheckKv(uint64_t id, const Seq& seq,
                                     int n) const {
  for (int p = 0; p < n; ++p) {
    const size_t slot =
        static_cast<size_t>(seq.block_table[p / block_size_]) * block_size_ +
        p % block_size_;
    if (kv_[slot] != seq.tokens[p]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sequence ", id, " position ", p, ": KV slot holds token ", kv_[slot],
          ", expected ", seq.tokens[p]));
    }
  }
  return absl::OkStatus();
}

absl::Status ToyWorkerState::Compute(uint64_t id, Seq& seq, int n,
                                     v1::StepResponse* response) {
  const int end = seq.num_computed + n;
  if (n < 1 || end > static_cast<int>(seq.tokens.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sequence ", id, ": ", n, " tokens scheduled from ", seq.num_computed,
        " but it has ", seq.tokens.size()));
  }
  if (static_cast<int64_t>(seq.block_table.size()) * block_size_ < end) {
    return absl::FailedPreconditionError(
        absl::StrCat("sequence ", id, ": ", seq.block_table.size(),
                     " blocks cannot hold ", end, " positions"));
  }
  for (int32_t b : seq.block_table) {
    if (b < 0 || static_cast<size_t>(b) * block_size_ >= kv_.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sequence ", id, ": block id ", b, " out of range"));
    }
  }
  // Attention reads every earlier position: they must hold our tokens.
  if (check_kv_) {
    if (absl::Status s = CheckKv(id, seq, seq.num_computed); !s.ok()) return s;
  }
  for (int p = seq.num_computed; p < end; ++p) {
    kv_[static_cast<size_t>(seq.block_table[p / block_size_]) * block_size_ +
        p % block_size_] = seq.tokens[p];
  }
  seq.num_computed = end;
  if (end == static_cast<int>(seq.tokens.size())) {
    // Like a real worker, it keeps what it sampled: the next step of the
    // sequence starts from it.
    const int32_t token = NextToken(seq.tokens.back(), vocab_size_);
    seq.tokens.push_back(token);
    v1::SampledToken* t = response->add_sampled();
    t->set_seq_id(id);
    t->set_token_id(token);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::StepResponse> ToyWorkerState::Step(
    const v1::StepRequest& request) {
  v1::StepResponse response;
  response.set_step_id(request.step_id());
  for (uint64_t id : request.finished_seq_ids()) {
    if (seqs_.erase(id) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("finished id ", id, " is not held"));
    }
  }
  for (const v1::NewSequence& ns : request.new_sequences()) {
    if (seqs_.count(ns.seq_id()) > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("new sequence ", ns.seq_id(), " is already held"));
    }
    Seq& seq = seqs_[ns.seq_id()];
    seq.tokens.assign(ns.token_ids().begin(), ns.token_ids().end());
    seq.block_table.assign(ns.block_table().begin(), ns.block_table().end());
    seq.num_computed = ns.num_computed_tokens();
    if (ns.num_prompt_tokens() < 1 ||
        ns.num_prompt_tokens() > ns.token_ids_size() ||
        !ns.sampling().has_seed()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "new sequence ", ns.seq_id(), ": bad prompt length or no seed"));
    }
    if (absl::Status s =
            Compute(ns.seq_id(), seq, ns.num_scheduled_tokens(), &response);
        !s.ok()) {
      return s;
    }
  }
  for (const v1::RunningSequence& rs : request.running_sequences()) {
    auto it = seqs_.find(rs.seq_id());
    if (it == seqs_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("running sequence ", rs.seq_id(), " is not held"));
    }
    Seq& seq = it->second;
    seq.block_table.insert(seq.block_table.end(), rs.new_block_ids().begin(),
                           rs.new_block_ids().end());
    if (absl::Status s =
            Compute(rs.seq_id(), seq, rs.num_scheduled_tokens(), &response);
        !s.ok()) {
      return s;
    }
  }
  // Any function of the samples will do: only equality across ranks counts.
  uint64_t digest = 0;
  for (const v1::SampledToken& t : response.sampled()) {
    digest = digest * 1000003 + t.seq_id() * 7919 + t.token_id();
  }
  response.set_sampled_digest(digest);
  return response;
}

}  // namespace tpserve::router::testing
