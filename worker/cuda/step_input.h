// The host side of one rank's step metadata, kept from step to step. Each
// sequence of the step owns a row; a sequence that stays in the batch keeps
// its row, so its block-table row only grows: the new block ids are appended
// in place and only they (plus the rows of sequences that joined or moved)
// travel to the device, as block_edits(). Nothing is rebuilt or zero-filled
// across max_num_seqs x max_blocks per step. The per-token and per-row arrays
// (tokens, positions, slot mapping, query starts, context lengths, sampled
// rows) are rebuilt every step: their size is the step's work. Decode padding
// for CUDA graphs is added here too, so this is the one object that knows
// how a step is laid out. Host code only (tested without a GPU).
//
// The batch it is given was validated where the step was applied (the
// worker service's SequenceTable); only the capacity these buffers were
// sized for is checked here.
#ifndef TPSERVE_WORKER_CUDA_STEP_INPUT_H_
#define TPSERVE_WORKER_CUDA_STEP_INPUT_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::cuda {

// Persistent rows plus the arrays of the current step (see the file comment).
class StepInput {
 public:
  // Room for `max_rows` sequences of at most `max_blocks` blocks each and
  // `max_tokens` tokens per step; `block_size` tokens per block.
  StepInput(int max_rows, int max_blocks, int max_tokens, int block_size);

  // Makes the rows those of `batch` (sequences matched by seq_id keep their
  // row; the rest are placed in free rows, the last rows moving down to keep
  // the rows dense) and rebuilds the step arrays. The row order is the order
  // the forward pass computes and samples in. INVALID_ARGUMENT when `batch`
  // exceeds the capacity (nothing changed then).
  absl::Status Update(const StepBatch& batch);
  // Appends decode padding rows until there are `rows`: token 0 at position
  // 0, no cache slot (-1), no context, a sampled row whose logits nobody
  // reads. A captured graph computes every row of its bucket.
  void PadDecodeRows(int rows);
  // Forgets every row (the device table holds nothing valid any more, e.g.
  // a new KV cache).
  void Clear();

  // Rows of the step without padding.
  int num_rows() const { return static_cast<int>(rows_.size()); }
  // The sequence in row `r` (its spans are the batch's, valid for the step).
  const SeqStep& row(int r) const { return rows_[r]; }
  // The sampling sequences in row order (the order of the logits rows).
  const std::vector<const SeqStep*>& sampling() const { return sampling_; }
  // For each of sampling(), its rank among the batch's sampling sequences
  // (results go back in batch order).
  const std::vector<int>& sampling_batch_order() const { return sampling_order_; }
  // Every row has exactly one query token.
  bool decode() const { return decode_; }
  // The longest context of the step (0 without rows).
  int max_context() const { return max_context_; }

  // The step arrays as the kernels read them, padding included.
  const std::vector<int>& tokens() const { return tokens_; }
  const std::vector<int>& positions() const { return positions_; }
  const std::vector<int>& slots() const { return slots_; }
  const std::vector<int>& sample_rows() const { return sample_rows_; }
  const std::vector<int>& q_start() const { return q_start_; }
  const std::vector<int>& q_len() const { return q_len_; }
  const std::vector<int>& context_lens() const { return context_lens_; }

  // Block-table writes the device copy has not seen yet: pairs (row *
  // max_blocks + i, block id), flattened. Cleared by ClearBlockEdits once
  // they were sent.
  const std::vector<int>& block_edits() const { return block_edits_; }
  void ClearBlockEdits() { block_edits_.clear(); }
  // The most block edits one step can produce (every row rewritten), in
  // ints: what the device staging for block_edits() must hold.
  int64_t max_block_edit_ints() const { return 2 * int64_t{max_rows_} * max_blocks_; }
  // The host mirror of the device table: block `i` of row `r`.
  int32_t block(int r, int i) const { return table_[static_cast<size_t>(r) * max_blocks_ + i]; }
  int max_blocks() const { return max_blocks_; }

 private:
  // Writes blocks [from, table.size()) of row `r` and records the edits.
  void WriteBlocks(int r, std::span<const int32_t> table, int from);

  const int max_rows_, max_blocks_, max_tokens_, block_size_;
  // Host mirror of the device block table, [max_rows][max_blocks]; row r's
  // first row_blocks_[r] entries are what the device holds.
  std::vector<int32_t> table_;
  std::vector<int> row_blocks_;
  // Which row each sequence of the last step holds.
  absl::flat_hash_map<uint64_t, int> row_of_;
  std::vector<SeqStep> rows_;
  std::vector<const SeqStep*> sampling_;
  std::vector<int> sampling_order_;
  bool decode_ = true;
  int max_context_ = 0;
  std::vector<int> tokens_, positions_, slots_, sample_rows_, q_start_, q_len_, context_lens_;
  std::vector<int> block_edits_;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_STEP_INPUT_H_
