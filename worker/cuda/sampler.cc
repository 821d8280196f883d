#include "worker/cuda/sampler.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/backend/bad_words.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/token_mask.h"

namespace tpserve::worker::cuda {

absl::StatusOr<std::unique_ptr<Sampler>> Sampler::Create(int vocab, int max_rows,
                                                         std::vector<int> eos_ids) {
  if (vocab <= 0 || max_rows <= 0) return absl::InvalidArgumentError("Sampler: bad vocab or max_rows");
  std::unique_ptr<Sampler> s(new Sampler());
  s->vocab_ = vocab;
  s->max_rows_ = max_rows;
  s->eos_ids_ = std::move(eos_ids);
  const size_t chunk_elems = static_cast<size_t>(kChunk) * vocab;
  TP_ASSIGN_OR_RETURN(s->processed_, DeviceBuffer::Allocate(chunk_elems * sizeof(float)));
  TP_ASSIGN_OR_RETURN(s->keys_in_, DeviceBuffer::Allocate(chunk_elems * sizeof(float)));
  TP_ASSIGN_OR_RETURN(s->keys_out_, DeviceBuffer::Allocate(chunk_elems * sizeof(float)));
  TP_ASSIGN_OR_RETURN(s->vals_in_, DeviceBuffer::Allocate(chunk_elems * sizeof(int)));
  TP_ASSIGN_OR_RETURN(s->vals_out_, DeviceBuffer::Allocate(chunk_elems * sizeof(int)));
  TP_RETURN_IF_ERROR(SortTempBytes(kChunk, static_cast<int>(chunk_elems), &s->sort_temp_bytes_));
  TP_ASSIGN_OR_RETURN(s->sort_temp_, DeviceBuffer::Allocate(s->sort_temp_bytes_));
  TP_ASSIGN_OR_RETURN(s->prepare_ws_, DeviceBuffer::Allocate(SamplePrepareWorkspaceBytes(kChunk)));
  static_assert(sizeof(int) == sizeof(float));
  TP_ASSIGN_OR_RETURN(s->results_, DeviceBuffer::Allocate(3 * max_rows * sizeof(float)));
  TP_ASSIGN_OR_RETURN(s->h_results_, HostBuffer::Allocate(3 * max_rows * sizeof(float)));
  TP_ASSIGN_OR_RETURN(s->params_, DeviceBuffer::Allocate(kChunk * sizeof(SampleRowParams)));
  TP_ASSIGN_OR_RETURN(s->h_params_, HostBuffer::Allocate(max_rows * sizeof(SampleRowParams)));
  TP_ASSIGN_OR_RETURN(s->rows_, DeviceBuffer::Allocate(kChunk * sizeof(int)));
  TP_ASSIGN_OR_RETURN(s->seg_begin_, DeviceBuffer::Allocate(kChunk * sizeof(int)));
  TP_ASSIGN_OR_RETURN(s->seg_end_, DeviceBuffer::Allocate(kChunk * sizeof(int)));
  s->words_per_row_ = (vocab + 31) / 32;
  return s;
}

absl::StatusOr<const uint32_t*> Sampler::StageMask(const SeqStep& s, int slot,
                                                   std::span<const int32_t> banned) {
  if (h_masks_.data() == nullptr) {
    // Allocated on the first restricted row: deployments without
    // structured output never pay for the page-locked words.
    const size_t row_bytes = static_cast<size_t>(words_per_row_) * sizeof(uint32_t);
    TP_ASSIGN_OR_RETURN(h_masks_, HostBuffer::Allocate(max_rows_ * row_bytes));
    TP_ASSIGN_OR_RETURN(masks_, DeviceBuffer::Allocate(kChunk * row_bytes));
    TP_ASSIGN_OR_RETURN(mask_rows_, DeviceBuffer::Allocate(kChunk * sizeof(int)));
  }
  uint32_t* w = h_masks_.as<uint32_t>() + static_cast<size_t>(slot) * words_per_row_;
  const size_t n = std::min<size_t>(s.allowed_mask.size(), words_per_row_);
  if (!s.allowed_mask.empty()) {
    std::copy_n(s.allowed_mask.begin(), n, w);
    std::fill(w + n, w + words_per_row_, 0u);
  } else {
    std::fill(w, w + words_per_row_, ~0u);
  }
  const std::vector<int32_t>& ids = s.sampling->allowed_token_ids;
  if (!ids.empty()) {
    // AND with the allowed ids: the CPU sampler applies both in turn.
    allowed_scratch_.assign(words_per_row_, 0u);
    for (int32_t t : ids) {
      if (t >= 0 && t < vocab_) allowed_scratch_[t >> 5] |= 1u << (t & 31);
    }
    for (int i = 0; i < words_per_row_; ++i) w[i] &= allowed_scratch_[i];
  }
  // The CPU sampler's next restriction, with its rule for a mask that
  // bad_words would leave empty.
  BanInMask(std::span<uint32_t>(w, words_per_row_), vocab_, banned);
  return w;
}

bool Sampler::OnlyStopsAllowed(const uint32_t* mask, const SamplingParams& sp) const {
  auto allowed = [&](int t) { return t >= 0 && t < vocab_ && ((mask[t >> 5] >> (t & 31)) & 1u); };
  std::vector<int> stops = sp.stop_token_ids;
  if (!sp.ignore_eos) stops.insert(stops.end(), eos_ids_.begin(), eos_ids_.end());
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());
  int64_t allowed_stops = 0;
  for (int t : stops) allowed_stops += allowed(t);
  int64_t total = 0;
  const int full_words = vocab_ / 32;
  for (int i = 0; i < full_words; ++i) total += __builtin_popcount(mask[i]);
  for (int t = full_words * 32; t < vocab_; ++t) total += allowed(t);
  return total == allowed_stops;
}

absl::Status Sampler::SampleChunk(const float* logits, const std::vector<const SeqStep*>& seqs,
                                  int first, int count, cudaStream_t stream) {
  // Each chunk stages its parameters in its own slice of the page-locked
  // buffer: a later chunk must not overwrite what an earlier copy still reads.
  SampleRowParams* params = h_params_.as<SampleRowParams>() + first;
  std::vector<LogitEdit> edits;
  std::vector<int> sampling_rows, top_rows, masked_rows;
  for (int r = 0; r < count; ++r) {
    const SeqStep& s = *seqs[first + r];
    const SamplingParams& sp = *s.sampling;
    SampleRowParams& p = params[r];
    p = SampleRowParams();
    p.temperature = sp.temperature;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    p.top_k = sp.top_k;
    p.presence_penalty = sp.presence_penalty;
    p.frequency_penalty = sp.frequency_penalty;
    p.repetition_penalty = sp.repetition_penalty;
    p.row = r;
    p.seed = sp.seed;
    const int num_outputs = static_cast<int>(s.token_ids.size()) - s.num_prompt_tokens;
    p.output_index = static_cast<uint64_t>(std::max(0, num_outputs));
    // Distinct tokens only, so the kernel's threads never edit one logit twice.
    std::map<int, LogitEdit> row_edits;
    const uint32_t* mask = nullptr;
    banned_scratch_.clear();
    if (!sp.bad_words.empty()) {
      BannedTokenIds(sp.bad_words, s.token_ids.subspan(std::min<size_t>(s.num_prompt_tokens, s.token_ids.size())),
                     &banned_scratch_);
    }
    if (!s.allowed_mask.empty() || !sp.allowed_token_ids.empty() || !banned_scratch_.empty()) {
      // Staged in this chunk's slice, masked rows packed from its start.
      TP_ASSIGN_OR_RETURN(mask, StageMask(s, first + static_cast<int>(masked_rows.size()), banned_scratch_));
      masked_rows.push_back(r);
      p.premasked = 1;
    }
    for (const auto& [t, bias] : sp.logit_bias) {
      if (t < 0 || t >= vocab_) continue;
      LogitEdit& e = row_edits[t];
      e.token = t;
      e.bias += bias;  // a repeated id adds up, as on the CPU
    }
    const bool penalties = sp.repetition_penalty != 1.0f || sp.presence_penalty != 0.0f ||
                           sp.frequency_penalty != 0.0f;
    if (penalties) {
      for (size_t i = 0; i < s.token_ids.size(); ++i) {
        const int t = s.token_ids[i];
        if (t < 0 || t >= vocab_) continue;
        LogitEdit& e = row_edits[t];
        e.token = t;
        e.seen = 1;
        if (static_cast<int>(i) >= s.num_prompt_tokens) ++e.output_count;
      }
    }
    if (num_outputs < sp.min_tokens && !(mask != nullptr && OnlyStopsAllowed(mask, sp))) {
      auto mask = [&](int t) {
        if (t < 0 || t >= vocab_) return;
        LogitEdit& e = row_edits[t];
        e.token = t;
        e.mask = 1;
      };
      if (!sp.ignore_eos) {
        for (int t : eos_ids_) mask(t);
      }
      for (int t : sp.stop_token_ids) mask(t);
    }
    p.edit_begin = static_cast<int>(edits.size());
    for (const auto& [t, e] : row_edits) edits.push_back(e);
    p.edit_end = static_cast<int>(edits.size());
    if (sp.temperature > 0.0f) sampling_rows.push_back(r);
    if (sp.logprobs && sp.top_logprobs > 0) top_rows.push_back(r);
  }
  if (edits.size() * sizeof(LogitEdit) > edits_.bytes()) {
    TP_ASSIGN_OR_RETURN(edits_, DeviceBuffer::Allocate(std::max<size_t>(4096, 2 * edits.size()) * sizeof(LogitEdit)));
  }
  if (!edits.empty()) {
    TP_CUDA_CHECK(cudaMemcpyAsync(edits_.data(), edits.data(), edits.size() * sizeof(LogitEdit),
                                  cudaMemcpyHostToDevice, stream));
  }
  TP_CUDA_CHECK(cudaMemcpyAsync(params_.data(), params, count * sizeof(SampleRowParams),
                                cudaMemcpyHostToDevice, stream));
  const float* chunk_logits = logits + static_cast<size_t>(first) * vocab_;
  if (!masked_rows.empty()) {
    const size_t words = masked_rows.size() * words_per_row_;
    TP_CUDA_CHECK(cudaMemcpyAsync(masks_.data(), h_masks_.as<uint32_t>() + static_cast<size_t>(first) * words_per_row_,
                                  words * sizeof(uint32_t), cudaMemcpyHostToDevice, stream));
    TP_CUDA_CHECK(cudaMemcpyAsync(mask_rows_.data(), masked_rows.data(), masked_rows.size() * sizeof(int),
                                  cudaMemcpyHostToDevice, stream));
    TP_RETURN_IF_ERROR(MaskedCopy(chunk_logits, masks_.as<uint32_t>(), mask_rows_.as<int>(),
                                  static_cast<int>(masked_rows.size()), vocab_, words_per_row_,
                                  processed_.as<float>(), stream));
  }
  int* tokens = results_.as<int>() + first;
  float* lse = results_.as<float>() + 2 * max_rows_ + first;
  TP_RETURN_IF_ERROR(SamplePrepare(chunk_logits, params_.as<SampleRowParams>(), count,
                                   edits_.as<LogitEdit>(), vocab_, processed_.as<float>(), lse, tokens,
                                   keys_in_.as<float>(), vals_in_.as<int>(), prepare_ws_.data(), stream));
  auto sort_rows = [&](const std::vector<int>& rows) -> absl::Status {
    std::vector<int> begin(rows.size()), end(rows.size());
    for (size_t j = 0; j < rows.size(); ++j) {
      begin[j] = rows[j] * vocab_;
      end[j] = begin[j] + vocab_;
    }
    TP_CUDA_CHECK(cudaMemcpyAsync(rows_.data(), rows.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    TP_CUDA_CHECK(cudaMemcpyAsync(seg_begin_.data(), begin.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    TP_CUDA_CHECK(cudaMemcpyAsync(seg_end_.data(), end.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    return SortRowsDescending(keys_in_.as<float>(), keys_out_.as<float>(), vals_in_.as<int>(),
                              vals_out_.as<int>(), static_cast<int>(rows.size()), count * vocab_,
                              seg_begin_.as<int>(), seg_end_.as<int>(), sort_temp_.data(),
                              sort_temp_bytes_, stream);
  };
  if (!sampling_rows.empty()) {
    TP_RETURN_IF_ERROR(sort_rows(sampling_rows));
    TP_RETURN_IF_ERROR(SampleFromSorted(keys_out_.as<float>(), vals_out_.as<int>(),
                                        params_.as<SampleRowParams>(), rows_.as<int>(),
                                        static_cast<int>(sampling_rows.size()), vocab_, tokens, stream));
  }
  TP_RETURN_IF_ERROR(GatherLogprobs(chunk_logits, lse, tokens, count, vocab_,
                                    results_.as<float>() + max_rows_ + first, stream));
  if (!top_rows.empty()) {
    TP_CUDA_CHECK(cudaMemcpyAsync(rows_.data(), top_rows.data(), top_rows.size() * sizeof(int),
                                  cudaMemcpyHostToDevice, stream));
    TP_RETURN_IF_ERROR(PrepareRawSort(chunk_logits, rows_.as<int>(), static_cast<int>(top_rows.size()),
                                      vocab_, keys_in_.as<float>(), vals_in_.as<int>(), stream));
    TP_RETURN_IF_ERROR(sort_rows(top_rows));
    for (int r : top_rows) {
      const int n = std::min(seqs[first + r]->sampling->top_logprobs, vocab_);
      std::vector<float> k(n);
      std::vector<int> v(n);
      TP_CUDA_CHECK(cudaMemcpyAsync(k.data(), keys_out_.as<float>() + static_cast<size_t>(r) * vocab_,
                                    n * sizeof(float), cudaMemcpyDeviceToHost, stream));
      TP_CUDA_CHECK(cudaMemcpyAsync(v.data(), vals_out_.as<int>() + static_cast<size_t>(r) * vocab_,
                                    n * sizeof(int), cudaMemcpyDeviceToHost, stream));
      TP_CUDA_CHECK(cudaStreamSynchronize(stream));
      auto& top = h_top_[first + r];
      for (int i = 0; i < n; ++i) top.emplace_back(v[i], k[i]);  // logit; lse subtracted later
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SampleResult>> Sampler::Sample(const float* logits,
                                                          const std::vector<const SeqStep*>& seqs,
                                                          cudaStream_t stream) {
  const int n = static_cast<int>(seqs.size());
  if (n > max_rows_) {
    return absl::InvalidArgumentError(absl::StrCat("Sampler: ", n, " rows exceed max ", max_rows_));
  }
  for (const SeqStep* s : seqs) {
    if (s->sampling == nullptr) return absl::InvalidArgumentError("Sampler: sequence without sampling params");
  }
  h_top_.assign(n, {});
  for (int first = 0; first < n; first += kChunk) {
    TP_RETURN_IF_ERROR(SampleChunk(logits, seqs, first, std::min(kChunk, n - first), stream));
  }
  // Ids, logprobs and log-sum-exps in one copy to page-locked memory.
  if (n > 0) {
    TP_CUDA_CHECK(cudaMemcpyAsync(h_results_.data(), results_.data(), results_.bytes(), cudaMemcpyDeviceToHost,
                                  stream));
  }
  TP_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int* h_tokens = h_results_.as<int>();
  const float* h_logprobs = h_results_.as<float>() + max_rows_;
  const float* h_lse = h_results_.as<float>() + 2 * max_rows_;
  std::vector<SampleResult> out(n);
  for (int i = 0; i < n; ++i) {
    out[i].seq_id = seqs[i]->seq_id;
    out[i].token_id = h_tokens[i];
    if (seqs[i]->sampling->logprobs) {
      out[i].has_logprobs = true;
      out[i].logprob = h_logprobs[i];
      for (auto& [id, logit] : h_top_[i]) out[i].top_logprobs.emplace_back(id, logit - h_lse[i]);
    }
  }
  return out;
}

}  // namespace tpserve::worker::cuda
