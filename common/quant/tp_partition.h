// Group-aligned tensor-parallel split of the MLP intermediate dimension for
// quantized checkpoints. A rank's slice of gate/up (output rows) and of
// down_proj (input columns, which carry the scale groups) must be whole
// groups; when intermediate_size is not a multiple of group_size * tp
// (Qwen2-72B: 29,568 = 231 groups of 128 at TP 2/4/8) the dimension is
// padded at the end to the next multiple with zero rows/columns, as Qwen's
// documentation recommends: padded gate/up rows give silu(0) * 0 = 0, so the
// padded down_proj columns never contribute.
#ifndef TPSERVE_COMMON_QUANT_TP_PARTITION_H_
#define TPSERVE_COMMON_QUANT_TP_PARTITION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/quant/quant_config.h"

namespace tpserve {

struct GroupAlignedPartition {
  int64_t size = 0;         // the real intermediate size
  int64_t alignment = 1;    // every rank's slice is a multiple of this
  int tp = 1;
  int64_t padded_size = 0;  // multiple of alignment * tp, >= size
  int64_t per_rank = 0;     // padded_size / tp
  int64_t padding() const { return padded_size - size; }
};

// One rank's slice of the padded dimension: [begin, begin + per_rank) of
// which [begin, real_end) are checkpoint rows and [real_end, begin +
// per_rank) are zero padding.
struct RankSlice {
  int64_t begin = 0;
  int64_t real_end = 0;
  int64_t end = 0;
  int64_t num_real() const { return real_end - begin; }
  int64_t num_padding() const { return end - real_end; }
};

// The split of `size` over `tp` ranks with every slice a multiple of
// `alignment`. INVALID_ARGUMENT (naming the numbers) for non-positive input.
absl::StatusOr<GroupAlignedPartition> PartitionGroupAligned(int64_t size, int64_t alignment,
                                                            int tp);

// Rank `rank`'s slice (rank in [0, tp)).
absl::StatusOr<RankSlice> SliceForRank(const GroupAlignedPartition& p, int rank);

// The alignment a quantized config needs along the intermediate dimension:
// the group size (AWQ/GPTQ with groups), else the pack factor (GPTQ per
// channel packs 32/bits inputs per word, AWQ 8 outputs), 1 for FP8 and
// unquantized checkpoints.
int64_t IntermediateAlignment(const QuantConfig& config);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_TP_PARTITION_H_
