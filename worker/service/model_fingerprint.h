// A stable hash naming "which model" a rank loaded, so the ranks of a group
// can check they all loaded the same one (ModelInfo.fingerprint).
#ifndef TPSERVE_WORKER_SERVICE_MODEL_FINGERPRINT_H_
#define TPSERVE_WORKER_SERVICE_MODEL_FINGERPRINT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve::worker {

// 16 hex digits of FNV-1a over config.json, the safetensors index and every
// shard's name, size and header (for "dummy": config.json and the seed).
// Reading headers only keeps this fast for 100+ GiB checkpoints.
absl::StatusOr<std::string> ModelFingerprint(const std::string& model_path,
                                             const std::string& load_format,
                                             uint64_t seed);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_MODEL_FINGERPRINT_H_
