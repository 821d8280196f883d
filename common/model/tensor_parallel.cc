#include "common/model/tensor_parallel.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve {
namespace {

bool Fits(const ModelConfig& c, int tp) {
  const int kv = c.num_key_value_heads;
  return c.num_attention_heads % tp == 0 && c.intermediate_size % tp == 0 && (kv % tp == 0 || tp % kv == 0);
}

// Sizes up to 8 (one host) that the model accepts, e.g. "1, 2, 4".
std::string Working(const ModelConfig& c) {
  std::vector<int> ok;
  for (int tp = 1; tp <= 8; ++tp) {
    if (Fits(c, tp)) ok.push_back(tp);
  }
  return absl::StrJoin(ok, ", ");
}

}  // namespace

absl::Status CheckTensorParallel(const ModelConfig& c, int tp) {
  if (tp < 1) return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", tp, " is not positive"));
  if (Fits(c, tp)) return absl::OkStatus();
  const char* what = nullptr;
  int n = 0;
  if (c.num_attention_heads % tp != 0) {
    what = "num_attention_heads";
    n = c.num_attention_heads;
  } else if (c.intermediate_size % tp != 0) {
    what = "intermediate_size";
    n = c.intermediate_size;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor-parallel size ", tp, " neither divides nor is a multiple of the model's num_key_value_heads (",
        c.num_key_value_heads, "); sizes that work: ", Working(c)));
  }
  return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", tp, " does not divide the model's ", what,
                                                 " (", n, "); sizes that work: ", Working(c)));
}

HeadSplit SplitHeads(const ModelConfig& c, int rank, int world_size) {
  const int kv = c.num_key_value_heads;
  HeadSplit h;
  h.num_heads = c.num_attention_heads / world_size;
  h.first_head = rank * h.num_heads;
  h.num_kv_heads = kv >= world_size ? kv / world_size : 1;
  h.first_kv_head = kv >= world_size ? rank * h.num_kv_heads : rank / (world_size / kv);
  h.intermediate = c.intermediate_size / world_size;
  return h;
}

}  // namespace tpserve
