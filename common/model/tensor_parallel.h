// The one check that a model splits across a tensor-parallel size: query
// heads and MLP columns divide evenly; KV heads divide evenly or are
// replicated (the size a multiple of them). The launcher checks it before
// starting processes, the worker when LoadModel arrives (its RPC boundary),
// and the backends' partition code relies on it.
#ifndef TPSERVE_COMMON_MODEL_TENSOR_PARALLEL_H_
#define TPSERVE_COMMON_MODEL_TENSOR_PARALLEL_H_

#include "absl/status/status.h"
#include "common/model/model_config.h"

namespace tpserve {

// INVALID_ARGUMENT naming the dimension and the sizes that would work.
absl::Status CheckTensorParallel(const ModelConfig& config, int tensor_parallel_size);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_TENSOR_PARALLEL_H_
