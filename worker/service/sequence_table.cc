#include "worker/service/sequence_table.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "common/sampling_rules.h"
#include "common/status_macros.h"

namespace tpserve::worker {
namespace {

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status CheckTokens(const std::string& where, const char* field,
                         const google::protobuf::RepeatedField<int32_t>& ids,
                         int vocab_size) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return Invalid(where, absl::StrCat(field, "[", i, "] = ", ids[i],
                                         " is outside the vocabulary [0, ",
                                         vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBlocks(const std::string& where, const char* field,
                         const google::protobuf::RepeatedField<int32_t>& ids,
                         int num_blocks) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= num_blocks) {
      return Invalid(where, absl::StrCat(field, "[", i, "] = block id ", ids[i],
                                         " is out of range [0, ", num_blocks,
                                         ")"));
    }
  }
  return absl::OkStatus();
}

// Checks the positions [computed, computed + scheduled) against the known
// tokens, the block table and max_model_len.
absl::Status CheckSpan(const std::string& where, int computed, int scheduled,
                       size_t num_tokens, size_t num_blocks,
                       const StepLimits& limits) {
  if (scheduled < 1) {
    return Invalid(where, absl::StrCat("num_scheduled_tokens must be >= 1, got ",
                                       scheduled));
  }
  const int64_t end = static_cast<int64_t>(computed) + scheduled;
  if (end > static_cast<int64_t>(num_tokens)) {
    return Invalid(where, absl::StrCat("scheduled positions [", computed, ", ", end,
                                       ") go past the ", num_tokens,
                                       " known tokens"));
  }
  if (end > limits.max_model_len) {
    return Invalid(where, absl::StrCat("position ", end - 1,
                                       " is past max_model_len ", limits.max_model_len));
  }
  const int64_t covered = static_cast<int64_t>(num_blocks) * limits.block_size;
  if (covered < end) {
    return Invalid(where, absl::StrCat("block table of ", num_blocks,
                                       " blocks covers ", covered,
                                       " positions, fewer than the ", end,
                                       " scheduled up to"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SamplingParams> ToSamplingParams(const v1::SamplingParams& p,
                                                int vocab_size) {
  const std::string where = "sampling";
  if (absl::Status s = CheckSamplingParams(p, vocab_size); !s.ok()) {
    return Invalid(where, std::string(s.message()));
  }
  SamplingParams s;
  s.temperature = p.temperature();
  if (p.has_seed()) {
    s.seed = p.seed();
  } else if (s.temperature > 0.0f) {
    return Invalid(where, "seed must be set (by the router) when temperature > 0");
  }
  // The proto's 0 means "unset" for these: their neutral values.
  s.top_p = p.top_p() == 0.0f ? 1.0f : p.top_p();
  s.top_k = p.top_k() < 0 ? 0 : p.top_k();
  s.min_p = p.min_p();
  s.min_tokens = p.min_tokens();
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  s.presence_penalty = p.presence_penalty();
  s.frequency_penalty = p.frequency_penalty();
  s.repetition_penalty = p.repetition_penalty() == 0.0f ? 1.0f : p.repetition_penalty();
  s.top_logprobs = p.top_logprobs();
  s.logprobs = p.logprobs() || p.top_logprobs() > 0;
  s.logit_bias.assign(p.logit_bias().begin(), p.logit_bias().end());
  std::sort(s.logit_bias.begin(), s.logit_bias.end());  // map order is unspecified
  s.allowed_token_ids.assign(p.allowed_token_ids().begin(), p.allowed_token_ids().end());
  // CheckSamplingParams above bounded bad_words and checked their ids.
  for (const v1::TokenIds& word : p.bad_words()) {
    s.bad_words.emplace_back(word.ids().begin(), word.ids().end());
  }
  return s;
}

absl::StatusOr<std::unique_ptr<structured::GrammarMatcher>> SequenceTable::NewGrammar(
    const v1::NewSequence& ns) const {
  const std::string& spec = ns.sampling().structured_output();
  if (spec.empty() || grammars_ == nullptr) return nullptr;
  absl::StatusOr<std::unique_ptr<structured::GrammarMatcher>> m = grammars_->NewMatcher(spec);
  if (!m.ok()) return m.status();
  // A sequence restarted after preemption arrives with its outputs.
  for (int i = ns.num_prompt_tokens(); i < ns.token_ids_size(); ++i) {
    if (!(*m)->AcceptToken(ns.token_ids(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("output token ", ns.token_ids(i), " at ", i, " does not follow the grammar"));
    }
  }
  return m;
}

absl::StatusOr<StepBatch> SequenceTable::Apply(const v1::StepRequest& step,
                                               const StepLimits& limits) {
  if (!pending_.empty()) {
    return absl::InternalError("a previous step was neither committed nor rolled back");
  }
  const std::string prefix = absl::StrCat("step ", step.step_id());
  // ---- validation: nothing changes until every part checks out ----
  std::unordered_set<uint64_t> forgotten;
  for (uint64_t id : step.finished_seq_ids()) {
    if (!seqs_.contains(id)) {
      return Invalid(prefix, absl::StrCat("finished_seq_ids names unknown sequence ", id));
    }
    if (!forgotten.insert(id).second) {
      return Invalid(prefix, absl::StrCat("sequence ", id, " is finished twice"));
    }
  }
  auto live = [&](uint64_t id) { return seqs_.contains(id) && !forgotten.contains(id); };
  std::unordered_set<uint64_t> in_step;
  int64_t total_scheduled = 0;
  std::vector<SamplingParams> new_sampling;
  std::vector<std::unique_ptr<structured::GrammarMatcher>> new_grammars;
  for (const v1::NewSequence& ns : step.new_sequences()) {
    const std::string where = absl::StrCat(prefix, ": new sequence ", ns.seq_id());
    if (live(ns.seq_id())) {
      return Invalid(where, "already exists (finish it first to restart it)");
    }
    if (!in_step.insert(ns.seq_id()).second) {
      return Invalid(where, "appears twice in the step");
    }
    const int n = ns.token_ids_size();
    if (n == 0) return Invalid(where, "token_ids is empty");
    if (n > limits.max_model_len) {
      return Invalid(where, absl::StrCat(n, " tokens exceed max_model_len ",
                                         limits.max_model_len));
    }
    TP_RETURN_IF_ERROR(CheckTokens(where, "token_ids", ns.token_ids(), limits.vocab_size));
    if (ns.num_prompt_tokens() < 1 || ns.num_prompt_tokens() > n) {
      return Invalid(where, absl::StrCat("num_prompt_tokens ", ns.num_prompt_tokens(),
                                         " is outside [1, ", n, "]"));
    }
    if (ns.num_computed_tokens() < 0 || ns.num_computed_tokens() >= n) {
      return Invalid(where, absl::StrCat("num_computed_tokens ", ns.num_computed_tokens(),
                                         " is outside [0, ", n, ")"));
    }
    TP_RETURN_IF_ERROR(CheckBlocks(where, "block_table", ns.block_table(), limits.num_blocks));
    TP_RETURN_IF_ERROR(CheckSpan(where, ns.num_computed_tokens(), ns.num_scheduled_tokens(),
                                 n, ns.block_table_size(), limits));
    absl::StatusOr<SamplingParams> sampling =
        ToSamplingParams(ns.sampling(), limits.vocab_size);
    if (!sampling.ok()) return Invalid(where, std::string(sampling.status().message()));
    new_sampling.push_back(*std::move(sampling));
    absl::StatusOr<std::unique_ptr<structured::GrammarMatcher>> grammar = NewGrammar(ns);
    if (!grammar.ok()) return Invalid(where, std::string(grammar.status().message()));
    new_grammars.push_back(*std::move(grammar));
    total_scheduled += ns.num_scheduled_tokens();
  }
  for (const v1::RunningSequence& rs : step.running_sequences()) {
    const std::string where = absl::StrCat(prefix, ": running sequence ", rs.seq_id());
    if (!live(rs.seq_id())) {
      return Invalid(where, forgotten.contains(rs.seq_id())
                                ? "is finished in this same step"
                                : "is unknown (never started, or already finished)");
    }
    if (!in_step.insert(rs.seq_id()).second) {
      return Invalid(where, "appears twice in the step");
    }
    const SequenceState& s = *seqs_.at(rs.seq_id());
    TP_RETURN_IF_ERROR(CheckBlocks(where, "new_block_ids", rs.new_block_ids(),
                                   limits.num_blocks));
    TP_RETURN_IF_ERROR(CheckSpan(where, s.num_computed_tokens, rs.num_scheduled_tokens(),
                                 s.token_ids.size(),
                                 s.block_table.size() + rs.new_block_ids_size(), limits));
    total_scheduled += rs.num_scheduled_tokens();
  }
  if (static_cast<int>(in_step.size()) > limits.max_num_seqs) {
    return Invalid(prefix, absl::StrCat(in_step.size(), " sequences exceed max_num_seqs ",
                                        limits.max_num_seqs));
  }
  if (total_scheduled > limits.max_num_batched_tokens) {
    return Invalid(prefix, absl::StrCat(total_scheduled,
                                        " scheduled tokens exceed max_num_batched_tokens ",
                                        limits.max_num_batched_tokens));
  }

  // ---- apply ----
  for (uint64_t id : forgotten) seqs_.erase(id);
  StepBatch batch;
  std::vector<SequenceState*> masked;
  last_mask_us_ = 0;
  auto add = [&](uint64_t id, int scheduled) {
    SequenceState& s = *seqs_.at(id);
    SeqStep seq;
    seq.seq_id = id;
    seq.token_ids = s.token_ids;
    seq.num_prompt_tokens = s.num_prompt_tokens;
    seq.num_computed_tokens = s.num_computed_tokens;
    seq.num_scheduled_tokens = scheduled;
    seq.block_table = s.block_table;
    seq.sample = s.num_computed_tokens + scheduled == static_cast<int>(s.token_ids.size());
    seq.sampling = &s.sampling;
    if (seq.sample && s.grammar != nullptr) {
      // Sized now so the span stays put; filled by batch.fill_masks.
      s.grammar_mask.resize(s.grammar->compiled().vocab().mask_words());
      seq.allowed_mask = s.grammar_mask;
      masked.push_back(&s);
    }
    batch.seqs.push_back(seq);
  };
  for (int i = 0; i < step.new_sequences_size(); ++i) {
    const v1::NewSequence& ns = step.new_sequences(i);
    auto state = std::make_unique<SequenceState>();
    state->token_ids.assign(ns.token_ids().begin(), ns.token_ids().end());
    state->num_prompt_tokens = ns.num_prompt_tokens();
    state->num_computed_tokens = ns.num_computed_tokens();
    state->block_table.assign(ns.block_table().begin(), ns.block_table().end());
    state->sampling = std::move(new_sampling[i]);
    state->grammar = std::move(new_grammars[i]);
    seqs_[ns.seq_id()] = std::move(state);
    pending_.push_back({ns.seq_id(), true, 0, ns.num_scheduled_tokens()});
  }
  for (const v1::RunningSequence& rs : step.running_sequences()) {
    SequenceState& s = *seqs_.at(rs.seq_id());
    pending_.push_back({rs.seq_id(), false, s.block_table.size(), rs.num_scheduled_tokens()});
    s.block_table.insert(s.block_table.end(), rs.new_block_ids().begin(),
                         rs.new_block_ids().end());
  }
  // Spans are taken after every insertion so no vector moves under them.
  for (const Pending& p : pending_) add(p.seq_id, p.num_scheduled);
  if (!masked.empty()) {
    // The states outlive the batch's use (until Commit/Rollback), and their
    // matchers only move in Commit, after the backend sampled.
    batch.fill_masks = [masked = std::move(masked), this] {
      const auto start = std::chrono::steady_clock::now();
      for (SequenceState* s : masked) s->grammar->FillNextTokenBitmask(s->grammar_mask);
      last_mask_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
    };
  }
  return batch;
}

void SequenceTable::Commit(const std::vector<SampleResult>& sampled) {
  for (const Pending& p : pending_) {
    seqs_.at(p.seq_id)->num_computed_tokens += p.num_scheduled;
  }
  for (const SampleResult& r : sampled) {
    SequenceState& s = *seqs_.at(r.seq_id);
    s.token_ids.push_back(r.token_id);
    // The sampler kept to the mask, so this only fails for a step scheduled
    // past EOS (the router runs one ahead), whose token is never reported.
    if (s.grammar != nullptr) s.grammar->AcceptToken(r.token_id);
  }
  pending_.clear();
}

void SequenceTable::Rollback() {
  for (const Pending& p : pending_) {
    if (p.is_new) {
      seqs_.erase(p.seq_id);
    } else {
      seqs_.at(p.seq_id)->block_table.resize(p.old_num_blocks);
    }
  }
  pending_.clear();
}

void SequenceTable::Clear() {
  seqs_.clear();
  pending_.clear();
}

const SequenceState* SequenceTable::Find(uint64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

}  // namespace tpserve::worker
