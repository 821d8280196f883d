// The worker's per-sequence state: what each live sequence's tokens, block
// table, sampling parameters and computed-token count are, so a Step message
// only carries what changed. Apply() validates a whole StepRequest before
// touching anything (a rejected step leaves the table as it was), then
// builds the backend's StepBatch. Commit() appends the tokens the step
// sampled: a running sequence's next step continues from them.
#ifndef TPSERVE_WORKER_SERVICE_SEQUENCE_TABLE_H_
#define TPSERVE_WORKER_SERVICE_SEQUENCE_TABLE_H_

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/worker.pb.h"
#include "structured/grammar_cache.h"
#include "worker/backend/backend.h"

namespace tpserve::worker {

// Bounds a step must respect; fixed at LoadModel/InitCache.
struct StepLimits {
  int num_blocks = 0;
  int block_size = 16;
  int vocab_size = 0;
  int max_model_len = 0;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
};

// One live sequence as the worker knows it.
struct SequenceState {
  std::vector<int32_t> token_ids;
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;
  std::vector<int32_t> block_table;
  SamplingParams sampling;
  // Structured output: the grammar's state after the outputs so far, and the
  // mask of the step in flight (null / empty for free text).
  std::unique_ptr<structured::GrammarMatcher> grammar;
  std::vector<uint32_t> grammar_mask;
};

// Checks the proto's sampling fields (common/sampling_rules.h, the rule the
// router admitted them by) and converts them, neutral values meaning "off";
// the result is what the backends trust without checking again.
absl::StatusOr<SamplingParams> ToSamplingParams(const v1::SamplingParams& proto,
                                                int vocab_size);

// Live sequences of one worker and the step in flight.
class SequenceTable {
 public:
  // Validates `step`; on success applies its finished/new/running parts and
  // returns the batch to run (its spans point into this table and stay valid
  // until Commit or Rollback). On error nothing changed.
  absl::StatusOr<StepBatch> Apply(const v1::StepRequest& step,
                                  const StepLimits& limits);
  // The backend ran the batch: the scheduled tokens are now computed and
  // each sampled token is appended to its sequence.
  void Commit(const std::vector<SampleResult>& sampled);
  // The backend failed: undo the step's new and running parts (finished
  // sequences stay forgotten, as the router asked).
  void Rollback();
  // Forgets every sequence (a new cache makes old block tables meaningless).
  void Clear();
  // Compiles the sequences' structured-output specs (not owned; null: the
  // backend does not apply grammar masks, and specs are ignored).
  void set_grammars(structured::GrammarCache* grammars) { grammars_ = grammars; }

  // Microseconds the last applied step spent filling grammar masks (in its
  // StepBatch::fill_masks); 0 when no sequence of it had a grammar.
  int64_t last_mask_us() const { return last_mask_us_; }

  // Number of live sequences.
  size_t size() const { return seqs_.size(); }
  // The sequence with `seq_id`, or null.
  const SequenceState* Find(uint64_t seq_id) const;

 private:
  // What a step changed in one sequence, to commit or roll back.
  struct Pending {
    uint64_t seq_id = 0;
    bool is_new = false;
    size_t old_num_blocks = 0;
    int num_scheduled = 0;
  };

  // A matcher for the new sequence's spec, advanced over its outputs; null
  // without a spec or without grammars_.
  absl::StatusOr<std::unique_ptr<structured::GrammarMatcher>> NewGrammar(
      const v1::NewSequence& ns) const;

  // unique_ptr keeps each state's address stable while the map rehashes.
  std::unordered_map<uint64_t, std::unique_ptr<SequenceState>> seqs_;
  std::vector<Pending> pending_;
  structured::GrammarCache* grammars_ = nullptr;
  int64_t last_mask_us_ = 0;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_SEQUENCE_TABLE_H_
