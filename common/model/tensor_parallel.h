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

// One rank's share of the attention heads and MLP columns, the same on every
// backend. With more ranks than KV heads each rank holds one KV head, shared
// by world_size / num_key_value_heads ranks.
struct HeadSplit {
  int num_heads = 0;  // query heads [first_head, first_head + num_heads)
  int first_head = 0;
  int num_kv_heads = 0;  // KV heads [first_kv_head, first_kv_head + num_kv_heads)
  int first_kv_head = 0;
  int intermediate = 0;  // MLP columns [rank * intermediate, + intermediate)
};

// The split of `config` for `rank` of `world_size`; the caller has checked
// CheckTensorParallel(config, world_size) and 0 <= rank < world_size.
HeadSplit SplitHeads(const ModelConfig& config, int rank, int world_size);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_TENSOR_PARALLEL_H_
