#include "worker/cuda/step_input.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tpserve::worker::cuda {

StepInput::StepInput(int max_rows, int max_blocks, int max_tokens, int block_size)
    : max_rows_(max_rows),
      max_blocks_(max_blocks),
      max_tokens_(max_tokens),
      block_size_(block_size),
      table_(static_cast<size_t>(max_rows) * max_blocks),
      row_blocks_(max_rows, 0) {}

void StepInput::Clear() {
  row_of_.clear();
  rows_.clear();
  std::fill(row_blocks_.begin(), row_blocks_.end(), 0);
  block_edits_.clear();
}

void StepInput::WriteBlocks(int r, std::span<const int32_t> table, int from) {
  int32_t* row = table_.data() + static_cast<size_t>(r) * max_blocks_;
  const int n = static_cast<int>(table.size());
  for (int i = from; i < n; ++i) {
    row[i] = table[i];
    block_edits_.push_back(r * max_blocks_ + i);
    block_edits_.push_back(table[i]);
  }
  row_blocks_[r] = n;
}

absl::Status StepInput::Update(const StepBatch& batch) {
  const int n = static_cast<int>(batch.seqs.size());
  if (n > max_rows_) {
    return absl::InvalidArgumentError(
        absl::StrCat("step has ", n, " sequences; max_num_seqs is ", max_rows_));
  }
  int64_t num_tokens = 0;
  for (const SeqStep& s : batch.seqs) {
    num_tokens += s.num_scheduled_tokens;
    if (static_cast<int>(s.block_table.size()) > max_blocks_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", s.seq_id, " has ", s.block_table.size(), " blocks; at most ", max_blocks_,
          " fit max_model_len"));
    }
  }
  if (num_tokens > max_tokens_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step has ", num_tokens, " tokens; max_num_batched_tokens is ", max_tokens_));
  }

  // Which batch entry each row gets: sequences seen last step keep their row
  // when it is below n; rows past n move down into the free rows, and
  // newcomers take what is left.
  const int old_rows = static_cast<int>(rows_.size());
  std::vector<int> entry_of_row(n, -1);
  std::vector<char> kept(std::max(old_rows, n), 0);
  std::vector<int> movers;  // batch entries whose row must change
  for (int i = 0; i < n; ++i) {
    auto it = row_of_.find(batch.seqs[i].seq_id);
    if (it != row_of_.end() && it->second < n) {
      entry_of_row[it->second] = i;
      kept[it->second] = 1;
    } else {
      movers.push_back(i);
    }
  }
  row_of_.clear();
  size_t next = 0;
  for (int r = 0; r < n; ++r) {
    if (!kept[r]) entry_of_row[r] = movers[next++];
  }

  // Each sampling entry's rank among the batch's sampling entries.
  std::vector<int> sample_rank(n, -1);
  for (int i = 0, k = 0; i < n; ++i) {
    if (batch.seqs[i].sample) sample_rank[i] = k++;
  }
  rows_.resize(n);
  sampling_.clear();
  sampling_order_.clear();
  tokens_.clear();
  positions_.clear();
  slots_.clear();
  sample_rows_.clear();
  q_start_.clear();
  q_len_.clear();
  context_lens_.clear();
  decode_ = true;
  max_context_ = 0;
  for (int r = 0; r < n; ++r) {
    const SeqStep& s = batch.seqs[entry_of_row[r]];
    rows_[r] = s;
    row_of_[s.seq_id] = r;
    const int stored = row_blocks_[r];
    const int have = static_cast<int>(s.block_table.size());
    // A kept row only grows; anything else (a new or moved sequence, or a
    // table that changed under the same id) is written whole.
    const bool grows = kept[r] && stored <= have &&
                       std::memcmp(table_.data() + static_cast<size_t>(r) * max_blocks_,
                                   s.block_table.data(), stored * sizeof(int32_t)) == 0;
    WriteBlocks(r, s.block_table, grows ? stored : 0);

    const int start = static_cast<int>(tokens_.size());
    const int end = s.num_computed_tokens + s.num_scheduled_tokens;
    q_start_.push_back(start);
    q_len_.push_back(s.num_scheduled_tokens);
    context_lens_.push_back(end);
    max_context_ = std::max(max_context_, end);
    if (s.num_scheduled_tokens != 1) decode_ = false;
    for (int p = s.num_computed_tokens; p < end; ++p) {
      tokens_.push_back(s.token_ids[p]);
      positions_.push_back(p);
      slots_.push_back(s.block_table[p / block_size_] * block_size_ + p % block_size_);
    }
    if (s.sample) {
      sample_rows_.push_back(static_cast<int>(tokens_.size()) - 1);
      sampling_.push_back(&rows_[r]);
      sampling_order_.push_back(sample_rank[entry_of_row[r]]);
    }
  }
  return absl::OkStatus();
}

void StepInput::PadDecodeRows(int rows) {
  for (int r = static_cast<int>(q_start_.size()); r < rows; ++r) {
    const int row = static_cast<int>(tokens_.size());
    tokens_.push_back(0);
    positions_.push_back(0);
    slots_.push_back(-1);
    sample_rows_.push_back(row);
    q_start_.push_back(row);
    q_len_.push_back(1);
    context_lens_.push_back(0);
  }
}

}  // namespace tpserve::worker::cuda
