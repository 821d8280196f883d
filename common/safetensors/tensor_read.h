// Reading tensors (or one tensor-parallel rank's slice of them) out of a
// mapped TensorView. Slices touch only the pages they need, so a rank's load
// time does not grow with the number of ranks.
#ifndef TPSERVE_COMMON_SAFETENSORS_TENSOR_READ_H_
#define TPSERVE_COMMON_SAFETENSORS_TENSOR_READ_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/safetensors_file.h"

namespace tpserve::safetensors {

// The whole tensor as float32 (BF16/F16/F32/F64 sources).
absl::StatusOr<std::vector<float>> ReadFloat32(const TensorView& tensor);

// Rows [begin, end) of a 2-D tensor, or elements [begin, end) of a 1-D one,
// as float32 (a column-parallel weight or bias shard).
absl::StatusOr<std::vector<float>> ReadRowsFloat32(const TensorView& tensor, int64_t begin,
                                                   int64_t end);

// Columns [begin, end) of a 2-D tensor as a row-major [rows, end - begin]
// float32 matrix (a row-parallel weight shard).
absl::StatusOr<std::vector<float>> ReadColumnsFloat32(const TensorView& tensor, int64_t begin,
                                                      int64_t end);

// Rows [begin, end) of a 1-D/2-D tensor as a view into the same mapping, no
// copy (contiguous, so a device loader can upload it directly).
absl::StatusOr<TensorView> SliceRows(const TensorView& tensor, int64_t begin, int64_t end);

// Columns [begin, end) of a 2-D tensor as raw bytes in the source dtype,
// row-major [rows, end - begin].
absl::StatusOr<std::vector<uint8_t>> CopyColumnsRaw(const TensorView& tensor, int64_t begin,
                                                    int64_t end);

// An integer tensor (I32 or I64) as int32 (token ids in test goldens).
absl::StatusOr<std::vector<int32_t>> ReadInt32(const TensorView& tensor);

}  // namespace tpserve::safetensors

#endif  // TPSERVE_COMMON_SAFETENSORS_TENSOR_READ_H_
