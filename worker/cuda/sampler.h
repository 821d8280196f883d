// Turns the logits of the sampling sequences into SampleResults on the GPU:
// structured output's token masks (with allowed_token_ids and bad_words) and logit_bias,
// penalties, greedy or seeded sampling, logprobs, in the CPU sampler's order
// (worker/model/sampler.h). Only the mask words go up, and only the token
// ids and the requested logprobs cross to the host.
#ifndef TPSERVE_WORKER_CUDA_SAMPLER_H_
#define TPSERVE_WORKER_CUDA_SAMPLER_H_

#include <cuda_runtime.h>

#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/cuda/device_buffer.h"
#include "worker/cuda/sampling.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::cuda {

// Sampling state for one rank: scratch buffers sized for `max_rows`
// sequences, processed in chunks so the sort buffers stay small.
class Sampler {
 public:
  // `eos_ids` are masked (with each request's stop_token_ids) while a
  // sequence has fewer than min_tokens outputs.
  static absl::StatusOr<std::unique_ptr<Sampler>> Create(int vocab, int max_rows,
                                                         std::vector<int> eos_ids);

  // `logits` is a device float matrix [seqs.size(), vocab]; row i belongs to
  // seqs[i] (its sampling params, token history and allowed_mask, which
  // must be filled by now). Blocks until the ids are on the host.
  absl::StatusOr<std::vector<SampleResult>> Sample(const float* logits,
                                                   const std::vector<const SeqStep*>& seqs,
                                                   cudaStream_t stream);

  // Rows handled per chunk (sort buffers hold this many vocab rows).
  static constexpr int kChunk = 16;

 private:
  Sampler() = default;
  absl::Status SampleChunk(const float* logits, const std::vector<const SeqStep*>& seqs, int first,
                           int count, cudaStream_t stream);
  // Writes the row's allowed tokens (grammar mask AND allowed_token_ids,
  // less the ids bad_words ban this step: `banned`) to page-locked slot
  // `slot` and returns it.
  absl::StatusOr<const uint32_t*> StageMask(const SeqStep& s, int slot, std::span<const int32_t> banned);
  // Whether `mask` allows nothing but the ids min_tokens would mask (EOS and
  // stop ids): then they stay, as on the CPU, or nothing could be sampled.
  bool OnlyStopsAllowed(const uint32_t* mask, const SamplingParams& sp) const;

  int vocab_ = 0;
  int max_rows_ = 0;
  std::vector<int> eos_ids_;
  DeviceBuffer processed_, keys_in_, keys_out_, vals_in_, vals_out_, sort_temp_, prepare_ws_;
  // results_: [token ids | logprobs | log-sum-exps], max_rows each, copied
  // to h_results_ (page-locked) in one transfer per step.
  DeviceBuffer results_, params_, rows_, seg_begin_, seg_end_, edits_;
  HostBuffer h_results_, h_params_;  // h_params_: max_rows, one slice per chunk
  // Token masks: words_per_row_ words a row; h_masks_ has max_rows slots
  // (one slice per chunk), masks_ and mask_rows_ one chunk's.
  int words_per_row_ = 0;
  HostBuffer h_masks_;
  DeviceBuffer masks_, mask_rows_;
  std::vector<uint32_t> allowed_scratch_;
  std::vector<int32_t> banned_scratch_;
  size_t sort_temp_bytes_ = 0;
  std::vector<std::vector<std::pair<int32_t, float>>> h_top_;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_SAMPLER_H_
