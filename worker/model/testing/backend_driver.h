// Drives one or more Backends (the ranks of a TP group) the way the router
// and worker service do: allocates KV blocks from a pool, prefills prompts in
// chunks, decodes, and runs every rank's Step concurrently. Test-only.
#ifndef TPSERVE_WORKER_MODEL_TESTING_BACKEND_DRIVER_H_
#define TPSERVE_WORKER_MODEL_TESTING_BACKEND_DRIVER_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::testing {

// How to schedule.
struct DriveOptions {
  // Prompt tokens per prefill step; 0: the whole prompt at once.
  int chunk = 0;
  // Run all prompts in one ragged batch (true) or one after another.
  bool batch_all = true;
  // Hand out KV blocks in a seeded random order instead of 0, 1, 2, ...
  bool shuffle_blocks = false;
  uint64_t shuffle_seed = 1;
  // Number of blocks InitCache was given.
  int num_blocks = 256;
  int block_size = 16;
};

// What one prompt produced.
struct DriveResult {
  // Generated tokens (max_new_tokens of them).
  std::vector<int32_t> tokens;
  // Logits at the last prompt position (from StepLogits).
  std::vector<float> prompt_logits;
};

// Generates `max_new_tokens` for each prompt with `params` (shared), checking
// that every rank returns the same tokens. `ranks` must be loaded and have
// their caches initialised with options.num_blocks blocks.
absl::StatusOr<std::vector<DriveResult>> Drive(const std::vector<Backend*>& ranks,
                                               const std::vector<std::vector<int32_t>>& prompts,
                                               int max_new_tokens, const SamplingParams& params,
                                               const DriveOptions& options);

// Runs fn(rank) on one thread per rank and returns the first error.
absl::Status RunOnRanks(int world_size, const std::function<absl::Status(int)>& fn);

}  // namespace tpserve::worker::testing

#endif  // TPSERVE_WORKER_MODEL_TESTING_BACKEND_DRIVER_H_
