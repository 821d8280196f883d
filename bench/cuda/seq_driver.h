// A minimal stand-in for the worker service's per-sequence bookkeeping, for
// the GPU check and benchmark binaries: owns token lists and block tables
// and turns them into StepBatches.
#ifndef TPSERVE_BENCH_CUDA_SEQ_DRIVER_H_
#define TPSERVE_BENCH_CUDA_SEQ_DRIVER_H_

#include <algorithm>
#include <cstdint>
#include <istream>
#include <sstream>
#include <string>
#include <vector>

#include "worker/backend/backend.h"

namespace tpserve::bench {

// Prompts as the scripts/gpu tools write them: one line of space-separated
// token ids per prompt; blank lines are skipped.
inline std::vector<std::vector<int32_t>> ReadPromptIds(std::istream& in) {
  std::vector<std::vector<int32_t>> prompts;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    if (!ids.empty()) prompts.push_back(std::move(ids));
  }
  return prompts;
}

// One sequence: tokens, its blocks, progress.
struct DriverSeq {
  std::vector<int32_t> tokens, blocks;
  int prompt = 0, computed = 0;
  worker::SamplingParams params;
};

// Hands out consecutive blocks to sequences (no reuse: the runs are short).
class SeqDriver {
 public:
  SeqDriver(int block_size, int num_blocks) : block_size_(block_size), num_blocks_(num_blocks) {}

  // Adds a sequence; false when the cache cannot hold `max_len` tokens more.
  bool Add(std::vector<int32_t> prompt, int max_len) {
    DriverSeq s;
    s.prompt = static_cast<int>(prompt.size());
    s.tokens = std::move(prompt);
    const int need = (max_len + block_size_ - 1) / block_size_;
    if (next_block_ + need > num_blocks_) return false;
    for (int b = 0; b < need; ++b) s.blocks.push_back(next_block_++);
    seqs_.push_back(std::move(s));
    return true;
  }

  // A step scheduling up to `chunk` tokens of each sequence (all of its
  // uncomputed tokens when chunk <= 0), sampling where the chunk ends at the
  // last known token.
  worker::StepBatch Step(int chunk) const {
    worker::StepBatch b;
    for (size_t i = 0; i < seqs_.size(); ++i) {
      const DriverSeq& s = seqs_[i];
      const int left = static_cast<int>(s.tokens.size()) - s.computed;
      if (left <= 0) continue;
      worker::SeqStep st;
      st.seq_id = i;
      st.token_ids = s.tokens;
      st.num_prompt_tokens = s.prompt;
      st.num_computed_tokens = s.computed;
      st.num_scheduled_tokens = chunk > 0 ? std::min(chunk, left) : left;
      st.block_table = s.blocks;
      st.sample = st.num_scheduled_tokens == left;
      st.sampling = &s.params;
      b.seqs.push_back(st);
    }
    return b;
  }

  // Records that `batch` ran (advances computed counts).
  void Advance(const worker::StepBatch& batch) {
    for (const auto& st : batch.seqs) seqs_[st.seq_id].computed += st.num_scheduled_tokens;
  }
  // Appends sampled tokens.
  void Append(const std::vector<worker::SampleResult>& results) {
    for (const auto& r : results) seqs_[r.seq_id].tokens.push_back(r.token_id);
  }

  std::vector<DriverSeq>& seqs() { return seqs_; }

 private:
  int block_size_, num_blocks_, next_block_ = 0;
  std::vector<DriverSeq> seqs_;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_CUDA_SEQ_DRIVER_H_
