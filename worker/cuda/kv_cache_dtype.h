// The element type of the paged KV cache (--kv-cache-dtype) and what it
// costs per element: host-only, shared by memory planning, the model and the
// kernels' launchers (kv_cache.cuh is the device side).
#ifndef TPSERVE_WORKER_CUDA_KV_CACHE_DTYPE_H_
#define TPSERVE_WORKER_CUDA_KV_CACHE_DTYPE_H_

#include <string>

#include "absl/status/statusor.h"

namespace tpserve::worker::cuda {

// kBf16: K and V as computed. kFp8E4m3: each value x stored as the E4M3 code
// of x / scale (round to nearest even, saturated to +-448), read back as
// code * scale (the scales are KvCacheRef's, per layer and tensor).
enum class KvCacheDtype { kBf16, kFp8E4m3 };

inline int KvCacheElementBytes(KvCacheDtype d) { return d == KvCacheDtype::kFp8E4m3 ? 1 : 2; }

// The cache type for --kv-cache-dtype `flag` (auto, fp8, fp8_e4m3) on a GPU
// of compute capability major.minor named `gpu_name`: FP8 needs sm_89 or
// newer (the cache write converts with cvt.e4m3; older GPUs would emulate
// it), so there it is refused with an error naming the GPU.
absl::StatusOr<KvCacheDtype> ChooseKvCacheDtype(const std::string& flag, const std::string& gpu_name, int major,
                                                int minor);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_KV_CACHE_DTYPE_H_
