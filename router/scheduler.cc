#include "router/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/sampling_rules.h"

namespace tpserve::router {

bool Scheduler::WaitingOrder::operator()(const Sequence* a,
                                         const Sequence* b) const {
  if (a->priority != b->priority) return a->priority < b->priority;
  return a->arrival < b->arrival;
}

Scheduler::Scheduler(SchedulerConfig config)
    : config_(std::move(config)),
      blocks_(config_.num_blocks, config_.block_size,
              config_.enable_prefix_caching),
      rng_(config_.seed),
      next_seq_id_(config_.first_seq_id) {}

absl::StatusOr<uint64_t> Scheduler::Add(const v1::GenerateRequest& request,
                                        absl::Time deadline) {
  if (absl::Status s = Validate(request); !s.ok()) return s;
  const int prompt_len = request.prompt_token_ids_size();
  if (static_cast<int>(waiting_.size()) >= config_.max_queued_requests) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue full: ", waiting_.size(),
                     " requests waiting (--max-queued-requests ",
                     config_.max_queued_requests, ")"));
  }
  if (config_.max_waiting_tokens > 0 &&
      waiting_tokens_ + prompt_len > config_.max_waiting_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full: ", waiting_tokens_, " prompt tokens waiting plus ",
        prompt_len, " would exceed --max-waiting-tokens ",
        config_.max_waiting_tokens));
  }
  auto seq = std::make_unique<Sequence>();
  seq->seq_id = next_seq_id_++;
  seq->request_id = request.request_id();
  seq->tokens.assign(request.prompt_token_ids().begin(),
                     request.prompt_token_ids().end());
  seq->num_prompt_tokens = prompt_len;
  seq->sampling = request.sampling();
  if (!seq->sampling.has_seed()) seq->sampling.set_seed(rng_());
  seq->priority = config_.priority_policy ? request.priority() : 0;
  seq->arrival = next_arrival_++;
  seq->deadline = deadline;
  Sequence* raw = seq.get();
  seqs_.emplace(raw->seq_id, std::move(seq));
  AddToWaiting(raw);
  return raw->seq_id;
}

absl::Status Scheduler::Validate(const v1::GenerateRequest& request) const {
  const int prompt_len = request.prompt_token_ids_size();
  const v1::SamplingParams& s = request.sampling();
  if (prompt_len == 0) {
    return absl::InvalidArgumentError("prompt_token_ids is empty");
  }
  for (int32_t t : request.prompt_token_ids()) {
    if (t < 0 || t >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token id ", t, " is outside the vocabulary [0, ",
                       config_.vocab_size, ")"));
    }
  }
  if (!config_.applies_token_masks &&
      (!s.structured_output().empty() || s.logit_bias_size() > 0 || s.allowed_token_ids_size() > 0)) {
    return absl::InvalidArgumentError(
        "structured output (response_format json_object/json_schema, guided_*, tool_choice "
        "\"required\" or a named function), logit_bias and allowed_token_ids are not supported by "
        "this deployment's workers (they found no tokenizer.json in the model folder, which "
        "the token masks are built from)");
  }
  if (s.max_tokens() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", s.max_tokens()));
  }
  if (s.min_tokens() < 0 || s.min_tokens() > s.max_tokens()) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_tokens must be in [0, max_tokens=", s.max_tokens(),
                     "], got ", s.min_tokens()));
  }
  // The same rule the workers apply to each new sequence: what is admitted
  // here never fails a step there.
  if (absl::Status r = CheckSamplingParams(s, config_.vocab_size); !r.ok()) return r;
  const int64_t total = int64_t{prompt_len} + s.max_tokens();
  if (total > config_.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", prompt_len, " tokens) + max_tokens (", s.max_tokens(),
        ") = ", total, " exceeds max_model_len ", config_.max_model_len));
  }
  // The last sampled token never needs a KV entry.
  const int positions = static_cast<int>(total - 1);
  if (blocks_.BlocksFor(positions) > blocks_.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt + max_tokens = ", total, " tokens needs ",
        blocks_.BlocksFor(positions), " KV blocks but the cache has only ",
        blocks_.num_blocks()));
  }
  return absl::OkStatus();
}

void Scheduler::Abort(uint64_t seq_id, absl::Status reason) {
  aborts_.emplace_back(seq_id, std::move(reason));
}

void Scheduler::AddToWaiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  waiting_.insert(seq);
  waiting_tokens_ += static_cast<int64_t>(seq->tokens.size());
}

void Scheduler::RemoveFromWaiting(Sequence* seq) {
  waiting_.erase(seq);
  waiting_tokens_ -= static_cast<int64_t>(seq->tokens.size());
}

void Scheduler::Preempt(Sequence* seq) {
  // Only with no step in flight (see StepPlan::needs_sync): nothing of the
  // sequence is on its way back.
  blocks_.Free(&seq->blocks);
  seq->num_computed_tokens = 0;
  seq->num_pending_tokens = 0;
  if (seq->on_workers) pending_finished_.push_back(seq->seq_id);
  seq->on_workers = false;
  seq->num_blocks_sent = 0;
  ++num_preemptions_;
  AddToWaiting(seq);
}

void Scheduler::Release(Sequence* seq) {
  blocks_.Free(&seq->blocks);
  if (seq->on_workers) pending_finished_.push_back(seq->seq_id);
  seqs_.erase(seq->seq_id);
}

void Scheduler::FillUsage(const Sequence& seq, SequenceOutput* out) const {
  out->seq_id = seq.seq_id;
  out->prompt_tokens = seq.num_prompt_tokens;
  out->completion_tokens = seq.num_output_tokens();
  out->cached_tokens = seq.num_cached_tokens.value_or(0);
}

void Scheduler::PushAbortOutput(const Sequence& seq, const absl::Status& status,
                                std::vector<SequenceOutput>* outputs) const {
  SequenceOutput out;
  FillUsage(seq, &out);
  out.finished = true;
  out.finish_reason = v1::FINISH_REASON_ABORT;
  out.error = status;
  outputs->push_back(std::move(out));
}

void Scheduler::EndWithError(Sequence* seq, const absl::Status& status,
                             std::vector<SequenceOutput>* outputs) {
  PushAbortOutput(*seq, status, outputs);
  if (seq->status == SequenceStatus::kWaiting) {
    RemoveFromWaiting(seq);
  } else {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  }
  Release(seq);
}

absl::Time Scheduler::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, seq] : seqs_) next = std::min(next, seq->deadline);
  return next;
}

bool Scheduler::ReachesLimit(const Sequence& seq) const {
  return seq.num_pending_tokens > 0 &&
         (seq.num_tokens_with_pending() >= config_.max_model_len ||
          seq.num_output_tokens() + seq.num_pending_tokens >=
              seq.sampling.max_tokens());
}

bool Scheduler::ScheduleRunning(
    int* budget, bool* preempted,
    std::vector<std::pair<Sequence*, int>>* scheduled) {
  for (size_t i = 0; i < running_.size() && *budget > 0;) {
    Sequence* seq = running_[i];
    const int n = std::min(
        seq->num_tokens_with_pending() - seq->num_computed_tokens, *budget);
    if (n <= 0 || ReachesLimit(*seq)) {
      ++i;
      continue;
    }
    bool fits = true;
    while (!blocks_.Append(seq->num_computed_tokens + n, &seq->blocks)) {
      if (!in_flight_.empty()) {
        // The blocks appended so far stay: the sequences need them next.
        scheduled->clear();
        return false;
      }
      Sequence* victim = running_.back();
      running_.pop_back();
      Preempt(victim);
      *preempted = true;
      if (victim == seq) {
        fits = false;
        break;
      }
    }
    if (!fits) break;
    scheduled->emplace_back(seq, n);
    *budget -= n;
    ++i;
  }
  return true;
}

void Scheduler::ScheduleWaiting(
    int* budget, std::vector<std::pair<Sequence*, int>>* scheduled) {
  while (!waiting_.empty() && *budget > 0 &&
         static_cast<int>(running_.size()) < config_.max_num_seqs) {
    Sequence* seq = *waiting_.begin();
    const std::vector<int32_t> hits = blocks_.FindCachedPrefix(seq->tokens);
    const int computed = static_cast<int>(hits.size()) * config_.block_size;
    const int n =
        std::min(static_cast<int>(seq->tokens.size()) - computed, *budget);
    std::optional<int> cached =
        blocks_.Allocate(seq->tokens, hits, computed + n, &seq->blocks);
    if (!cached.has_value()) break;
    prefix_queried_ += static_cast<int64_t>(seq->tokens.size());
    prefix_hits_ += *cached;
    if (!seq->num_cached_tokens.has_value()) {
      seq->num_cached_tokens = std::min(*cached, seq->num_prompt_tokens);
    }
    seq->num_computed_tokens = *cached;
    RemoveFromWaiting(seq);
    seq->status = SequenceStatus::kRunning;
    running_.push_back(seq);
    scheduled->emplace_back(seq, n);
    *budget -= n;
  }
}

void Scheduler::Schedule(absl::Time now, StepPlan* plan,
                         std::vector<SequenceOutput>* outputs) {
  plan->request.Clear();
  plan->scheduled.clear();
  plan->num_scheduled_tokens = 0;
  plan->needs_sync = false;
  for (auto& [id, status] : aborts_) {
    auto it = seqs_.find(id);
    if (it != seqs_.end()) EndWithError(it->second.get(), status, outputs);
  }
  aborts_.clear();
  std::vector<Sequence*> expired;
  for (const auto& [id, seq] : seqs_) {
    if (seq->deadline <= now) expired.push_back(seq.get());
  }
  for (Sequence* seq : expired) {
    EndWithError(seq,
                 absl::DeadlineExceededError(absl::StrCat(
                     "request ", seq->request_id, " passed its deadline after ",
                     seq->num_output_tokens(), " generated tokens")),
                 outputs);
  }
  if (config_.priority_policy) {
    std::stable_sort(running_.begin(), running_.end(), WaitingOrder());
  }
  // Full blocks whose KV the steps sent so far write become shareable now:
  // workers run steps in order, so the next step reads them after they were
  // written. (A failed step ends every sequence, and the next handshake
  // starts a new scheduler with an empty cache.)
  for (Sequence* seq : running_) {
    blocks_.Commit(seq->tokens,
                   std::min(seq->num_computed_tokens,
                            static_cast<int>(seq->tokens.size())),
                   &seq->blocks);
  }

  int budget = config_.max_num_batched_tokens;
  bool preempted = false;
  std::vector<std::pair<Sequence*, int>> running_scheduled;
  if (!ScheduleRunning(&budget, &preempted, &running_scheduled)) {
    plan->needs_sync = true;
    return;
  }
  // Waiting prompts only when nobody had to give up blocks this step (vLLM
  // v1 does the same: memory is tight, let the running ones finish).
  std::vector<std::pair<Sequence*, int>> new_scheduled;
  if (!preempted) ScheduleWaiting(&budget, &new_scheduled);
  // Finished ids ride on the next step that computes something: the engine
  // sends no step without work, and an idle worker holding a few sequences'
  // token lists costs nothing (the router owns the blocks).
  if (new_scheduled.empty() && running_scheduled.empty()) return;
  v1::StepRequest& request = plan->request;
  request.set_step_id(++step_id_);
  for (uint64_t id : pending_finished_) request.add_finished_seq_ids(id);
  pending_finished_.clear();
  plan->scheduled.reserve(new_scheduled.size() + running_scheduled.size());
  for (auto& [seq, n] : new_scheduled) Describe(seq, n, plan);
  for (auto& [seq, n] : running_scheduled) Describe(seq, n, plan);
  plan->num_scheduled_tokens = config_.max_num_batched_tokens - budget;
  in_flight_.push_back(step_id_);
}

void Scheduler::Describe(Sequence* seq, int num_tokens, StepPlan* plan) {
  v1::StepRequest* request = &plan->request;
  if (!seq->on_workers) {
    v1::NewSequence* ns = request->add_new_sequences();
    ns->set_seq_id(seq->seq_id);
    ns->mutable_token_ids()->Add(seq->tokens.begin(), seq->tokens.end());
    ns->set_num_prompt_tokens(seq->num_prompt_tokens);
    ns->set_num_computed_tokens(seq->num_computed_tokens);
    ns->set_num_scheduled_tokens(num_tokens);
    ns->mutable_block_table()->Add(seq->blocks.block_ids.begin(),
                                   seq->blocks.block_ids.end());
    *ns->mutable_sampling() = seq->sampling;
    seq->on_workers = true;
  } else {
    // No tokens: the workers continue from what they sampled themselves.
    v1::RunningSequence* rs = request->add_running_sequences();
    rs->set_seq_id(seq->seq_id);
    rs->set_num_scheduled_tokens(num_tokens);
    rs->mutable_new_block_ids()->Add(
        seq->blocks.block_ids.begin() + seq->num_blocks_sent,
        seq->blocks.block_ids.end());
  }
  seq->num_blocks_sent = static_cast<int>(seq->blocks.block_ids.size());
  seq->num_computed_tokens += num_tokens;
  const bool samples =
      seq->num_computed_tokens == seq->num_tokens_with_pending();
  if (samples) ++seq->num_pending_tokens;
  plan->scheduled.push_back({seq->seq_id, num_tokens, samples});
}

void Scheduler::CheckStop(const Sequence& seq, SequenceOutput* out) const {
  // vLLM v1's order: length caps first, then (past min_tokens) EOS and stop
  // token ids.
  if (static_cast<int>(seq.tokens.size()) >= config_.max_model_len ||
      seq.num_output_tokens() >= seq.sampling.max_tokens()) {
    out->finished = true;
    out->finish_reason = v1::FINISH_REASON_LENGTH;
    return;
  }
  if (seq.num_output_tokens() < seq.sampling.min_tokens()) return;
  const int32_t last = seq.tokens.back();
  const bool eos =
      !seq.sampling.ignore_eos() &&
      std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(),
                last) != config_.eos_token_ids.end();
  const auto& stops = seq.sampling.stop_token_ids();
  if (eos || std::find(stops.begin(), stops.end(), last) != stops.end()) {
    out->finished = true;
    out->finish_reason = v1::FINISH_REASON_STOP;
    out->stop_token_id = last;
  }
}

absl::Status Scheduler::Update(const StepPlan& plan,
                               const v1::StepResponse& response,
                               std::vector<SequenceOutput>* outputs) {
  const uint64_t step_id = plan.request.step_id();
  if (in_flight_.empty() || in_flight_.front() != step_id) {
    return absl::InternalError(absl::StrCat(
        "step ", step_id, " updated out of order (oldest in flight: ",
        in_flight_.empty() ? 0 : in_flight_.front(), ")"));
  }
  if (response.step_id() != step_id) {
    return absl::InternalError(absl::StrCat("rank 0 answered step ",
                                            response.step_id(), " to step ",
                                            step_id));
  }
  // Workers answer in the step's order; match by position, and by id only
  // when that fails.
  std::vector<const v1::SampledToken*> token_of(plan.scheduled.size(), nullptr);
  int next = 0;
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    if (!plan.scheduled[i].samples) continue;
    if (next < response.sampled_size() &&
        response.sampled(next).seq_id() == plan.scheduled[i].seq_id) {
      token_of[i] = &response.sampled(next++);
      continue;
    }
    absl::flat_hash_map<uint64_t, const v1::SampledToken*> by_id;
    for (const v1::SampledToken& t : response.sampled()) by_id[t.seq_id()] = &t;
    for (size_t j = 0; j < plan.scheduled.size(); ++j) {
      auto it = by_id.find(plan.scheduled[j].seq_id);
      token_of[j] = plan.scheduled[j].samples && it != by_id.end() ? it->second : nullptr;
    }
    break;
  }
  // Check the whole response before changing anything.
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledSequence& entry = plan.scheduled[i];
    if (!entry.samples) continue;
    if (token_of[i] == nullptr) {
      return absl::InternalError(absl::StrCat(
          "rank 0 returned no token for sequence ", entry.seq_id));
    }
    const int32_t token = token_of[i]->token_id();
    if (token < 0 || token >= config_.vocab_size) {
      return absl::InternalError(absl::StrCat(
          "rank 0 sampled token ", token, " outside [0, ", config_.vocab_size,
          ") for sequence ", entry.seq_id));
    }
  }
  in_flight_.pop_front();
  std::vector<Sequence*> finished;
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledSequence& entry = plan.scheduled[i];
    if (!entry.samples) continue;  // A prompt chunk; nothing sampled yet.
    auto it = seqs_.find(entry.seq_id);
    // Ended while the step was in flight (cancelled, expired, or finished by
    // the step before): the token is dropped.
    if (it == seqs_.end()) continue;
    Sequence* seq = it->second.get();
    const v1::SampledToken& t = *token_of[i];
    --seq->num_pending_tokens;
    seq->tokens.push_back(t.token_id());
    SequenceOutput out;
    out.token_ids.push_back(t.token_id());
    if (t.has_logprob()) out.logprobs.push_back(t.logprob());
    CheckStop(*seq, &out);
    FillUsage(*seq, &out);
    if (out.finished) {
      // Its computed blocks stay shareable (e.g. for the next turn of a
      // chat); the new token has no KV entry.
      blocks_.Commit(seq->tokens,
                     std::min(seq->num_computed_tokens,
                              static_cast<int>(seq->tokens.size()) - 1),
                     &seq->blocks);
      finished.push_back(seq);
    }
    outputs->push_back(std::move(out));
  }
  if (!finished.empty()) {
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](Sequence* s) {
                                    return std::find(finished.begin(),
                                                     finished.end(),
                                                     s) != finished.end();
                                  }),
                   running_.end());
    for (Sequence* seq : finished) Release(seq);
  }
  return absl::OkStatus();
}

void Scheduler::AbortAll(const absl::Status& status,
                         std::vector<SequenceOutput>* outputs) {
  for (auto& [id, seq] : seqs_) {
    PushAbortOutput(*seq, status, outputs);
    blocks_.Free(&seq->blocks);
  }
  seqs_.clear();
  waiting_.clear();
  running_.clear();
  aborts_.clear();
  pending_finished_.clear();
  in_flight_.clear();
  waiting_tokens_ = 0;
}

}  // namespace tpserve::router
