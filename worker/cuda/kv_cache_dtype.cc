#include "worker/cuda/kv_cache_dtype.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::cuda {

absl::StatusOr<KvCacheDtype> ChooseKvCacheDtype(const std::string& flag, const std::string& gpu_name, int major,
                                                int minor) {
  TP_ASSIGN_OR_RETURN(const bool fp8, IsFp8KvCache(flag));
  if (!fp8) return KvCacheDtype::kBf16;
  if (major * 10 + minor < 89) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-cache-dtype ", flag, " needs a GPU with FP8 (compute capability 8.9 or newer: L40S, RTX 4090, "
        "H100/H200, B200); ", gpu_name, " is sm_", major, minor, ". Use --kv-cache-dtype auto (bfloat16 KV cache)"));
  }
  return KvCacheDtype::kFp8E4m3;
}

}  // namespace tpserve::worker::cuda
