// The reference goldens of a fixture model folder (goldens.safetensors, made
// by HF transformers) read with our own safetensors reader. Test-only.
#ifndef TPSERVE_WORKER_MODEL_TESTING_GOLDENS_H_
#define TPSERVE_WORKER_MODEL_TESTING_GOLDENS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/comm/communicator.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::testing {

// One golden prompt.
struct GoldenPrompt {
  std::vector<int32_t> input_ids;
  std::vector<float> last_logits;  // [vocab]
  std::vector<int32_t> argmax;     // per prompt position
  std::vector<int32_t> greedy;     // 24 greedy continuation tokens
  std::vector<float> all_logits;   // [len, vocab] or empty
};

// Every p{i} in <dir>/goldens.safetensors.
absl::StatusOr<std::vector<GoldenPrompt>> LoadGoldens(const std::string& dir);

// max |got - ref| / max |ref| over n values (the fixtures' tolerance metric).
double RelativeError(const float* got, const float* ref, size_t n);

// Index of the largest value (lowest index on ties).
int32_t ArgMax(const float* values, size_t n);

// A CPU backend loaded from `options` and given `num_blocks` KV blocks.
absl::StatusOr<std::unique_ptr<Backend>> LoadCpu(const LoadOptions& options, int num_blocks,
                                                 Communicator* comm = nullptr);

}  // namespace tpserve::worker::testing

#endif  // TPSERVE_WORKER_MODEL_TESTING_GOLDENS_H_
