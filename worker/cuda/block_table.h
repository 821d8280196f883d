// Patches the device copy of the block tables with the writes StepInput
// recorded (worker/cuda/step_input.h), so a step sends only the block ids
// that changed instead of every row.
#ifndef TPSERVE_WORKER_CUDA_BLOCK_TABLE_H_
#define TPSERVE_WORKER_CUDA_BLOCK_TABLE_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// table[edits[2 i]] = edits[2 i + 1] for i in [0, num_edits). `edits` is a
// device array; indices must be in range (StepInput produces them). A plain
// launch (no programmatic dependent launch), so every kernel after it on the
// stream sees the table patched.
absl::Status ApplyBlockTableEdits(const int* edits, int num_edits, int* table,
                                  cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_BLOCK_TABLE_H_
