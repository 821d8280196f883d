#include "worker/model/testing/backend_driver.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::worker::testing {
namespace {

struct Seq {
  std::vector<int32_t> tokens;
  int num_prompt = 0;
  int num_computed = 0;
  std::vector<int32_t> blocks;
  DriveResult result;
};

}  // namespace

absl::Status RunOnRanks(int world_size, const std::function<absl::Status(int)>& fn) {
  if (world_size == 1) return fn(0);
  std::vector<absl::Status> status(world_size);
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) threads.emplace_back([&, r] { status[r] = fn(r); });
  for (auto& t : threads) t.join();
  for (const auto& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DriveResult>> Drive(const std::vector<Backend*>& ranks,
                                               const std::vector<std::vector<int32_t>>& prompts,
                                               int max_new_tokens, const SamplingParams& params,
                                               const DriveOptions& options) {
  if (!options.batch_all) {
    std::vector<DriveResult> out;
    DriveOptions one = options;
    one.batch_all = true;
    for (const auto& prompt : prompts) {
      auto r = Drive(ranks, {prompt}, max_new_tokens, params, one);
      if (!r.ok()) return r.status();
      out.push_back((*r)[0]);
    }
    return out;
  }
  std::vector<int32_t> pool(options.num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  if (options.shuffle_blocks) std::shuffle(pool.begin(), pool.end(), std::mt19937_64(options.shuffle_seed));
  size_t next_block = 0;

  std::vector<Seq> seqs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs[i].tokens = prompts[i];
    seqs[i].num_prompt = static_cast<int>(prompts[i].size());
  }
  const int world = static_cast<int>(ranks.size());
  while (true) {
    StepBatch batch;
    std::vector<int> members;
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      if (static_cast<int>(s.result.tokens.size()) >= max_new_tokens) continue;
      const int remaining = static_cast<int>(s.tokens.size()) - s.num_computed;
      const int n = options.chunk > 0 ? std::min(options.chunk, remaining) : remaining;
      const int end = s.num_computed + n;
      while (static_cast<int>(s.blocks.size()) * options.block_size < end) {
        if (next_block >= pool.size()) return absl::ResourceExhaustedError("driver out of blocks");
        s.blocks.push_back(pool[next_block++]);
      }
      SeqStep step;
      step.seq_id = i;
      step.token_ids = s.tokens;
      step.num_prompt_tokens = s.num_prompt;
      step.num_computed_tokens = s.num_computed;
      step.num_scheduled_tokens = n;
      step.block_table = s.blocks;
      step.sample = end == static_cast<int>(s.tokens.size());
      step.sampling = &params;
      batch.seqs.push_back(step);
      members.push_back(static_cast<int>(i));
    }
    if (batch.seqs.empty()) break;

    // Logits at the end of each prompt, before its first sampled token.
    bool prompt_done = false;
    for (size_t b = 0; b < members.size(); ++b) {
      prompt_done |= batch.seqs[b].sample && seqs[members[b]].result.tokens.empty();
    }
    std::vector<std::vector<std::vector<float>>> logits(world);
    if (prompt_done) {
      auto s = RunOnRanks(world, [&](int r) -> absl::Status {
        auto l = ranks[r]->StepLogits(batch);
        if (!l.ok()) return l.status();
        logits[r] = std::move(*l);
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
    }
    std::vector<std::vector<SampleResult>> sampled(world);
    auto s = RunOnRanks(world, [&](int r) -> absl::Status {
      auto out = ranks[r]->Step(batch);
      if (!out.ok()) return out.status();
      sampled[r] = std::move(*out);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    for (int r = 1; r < world; ++r) {
      for (size_t j = 0; j < sampled[0].size(); ++j) {
        if (sampled[r][j].token_id != sampled[0][j].token_id) {
          return absl::InternalError(absl::StrCat("rank ", r, " sampled ", sampled[r][j].token_id,
                                                  " but rank 0 sampled ", sampled[0][j].token_id));
        }
      }
    }
    size_t k = 0;
    for (size_t b = 0; b < members.size(); ++b) {
      Seq& seq = seqs[members[b]];
      seq.num_computed += batch.seqs[b].num_scheduled_tokens;
      if (!batch.seqs[b].sample) continue;
      if (seq.result.tokens.empty() && prompt_done) seq.result.prompt_logits = logits[0][k];
      const int32_t token = sampled[0][k++].token_id;
      seq.result.tokens.push_back(token);
      seq.tokens.push_back(token);
    }
  }
  std::vector<DriveResult> out;
  for (auto& s : seqs) out.push_back(std::move(s.result));
  return out;
}

}  // namespace tpserve::worker::testing
