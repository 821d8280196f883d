#include "common/quant/tp_partition.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve {

absl::StatusOr<GroupAlignedPartition> PartitionGroupAligned(int64_t size, int64_t alignment,
                                                            int tp) {
  if (size <= 0 || alignment <= 0 || tp <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("group-aligned partition needs size, alignment ",
                                                   "and tensor-parallel size > 0; got size ", size,
                                                   ", alignment ", alignment, ", tp ", tp));
  }
  GroupAlignedPartition p;
  p.size = size;
  p.alignment = alignment;
  p.tp = tp;
  const int64_t unit = alignment * tp;
  p.padded_size = (size + unit - 1) / unit * unit;
  p.per_rank = p.padded_size / tp;
  return p;
}

absl::StatusOr<RankSlice> SliceForRank(const GroupAlignedPartition& p, int rank) {
  if (rank < 0 || rank >= p.tp) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " is not in [0, ", p.tp, ")"));
  }
  RankSlice s;
  s.begin = rank * p.per_rank;
  s.end = s.begin + p.per_rank;
  s.real_end = std::clamp(p.size, s.begin, s.end);
  return s;
}

int64_t IntermediateAlignment(const QuantConfig& c) {
  switch (c.method) {
    case QuantMethod::kNone:
    case QuantMethod::kFp8:
      return 1;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
      return c.group_size > 0 ? c.group_size : c.pack_factor();
  }
  return 1;
}

}  // namespace tpserve
