// Host-side repacking of AWQ / GPTQ int4 and int8 weights into the GPU's
// canonical layout (worker/cuda/gemv_int.h): from AWQ's interleaved
// [in, out/8] words, GPTQ's [in/(32/bits), out] words with v1's +1 zero
// offset, and act-order (desc_act) g_idx, to output rows of input-ordered
// codes with one scale and zero point per (row, group). Pure CPU code, so its
// exactness is tested in CI.
#ifndef TPSERVE_WORKER_CUDA_INT_REPACK_H_
#define TPSERVE_WORKER_CUDA_INT_REPACK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quant/dequant.h"

namespace tpserve::worker::cuda {

// One weight slice [n, k] in the canonical layout, on the host.
struct IntRepacked {
  int bits = 4;
  int group = 0;                // canonical inputs per group (a multiple of 32)
  int64_t n = 0, k = 0;
  std::vector<uint32_t> codes;  // [n, k * bits / 32]
  std::vector<float> scale;     // [n, k / group]
  std::vector<uint16_t> zero;   // [n, k / group]
  std::vector<int32_t> perm;    // [k] original (slice-local) input of canonical input j; empty = identity
};

// Rows [out_begin, out_end) and inputs [in_begin, in_end) of `w`, followed
// by `pad_inputs` zero inputs (tensor-parallel group padding, whole groups).
// The inputs are ordered by group (stable, so the identity without
// desc_act); a canonical group is the checkpoint's group size, or for
// per-channel weights the largest of 1024..32 dividing the slice and the
// padding. FAILED_PRECONDITION (saying why) when the slice cannot be laid out
// so: a group size that is not a multiple of 32, a slice that starts inside a
// group, or act-order groups of unequal sizes within the slice -- the caller
// then keeps the layer in bf16.
absl::StatusOr<IntRepacked> RepackInt(const PackedIntWeight& w, int64_t out_begin, int64_t out_end,
                                      int64_t in_begin, int64_t in_end, int64_t pad_inputs = 0);

// Appends the rows of `piece` (same bits, group, k and permutation, else
// FAILED_PRECONDITION) below `dst`; an empty `dst` takes `piece`'s layout.
absl::Status AppendRows(IntRepacked& dst, const IntRepacked& piece);

// Appends `rows` zero rows (codes and zero points 0, scale 0: every weight
// is 0) below `dst`, which must already have a layout.
void AppendZeroRows(IntRepacked& dst, int64_t rows);

// The float32 weight [n, k] in the slice's original input order (the
// inverse of RepackInt), for tests: (q - zero) * scale, as common/quant.
std::vector<float> DequantizeRepacked(const IntRepacked& r);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_INT_REPACK_H_
