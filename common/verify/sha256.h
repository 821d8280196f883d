// SHA-256 of files, streamed (model shards are tens of GB).
#ifndef TPSERVE_COMMON_VERIFY_SHA256_H_
#define TPSERVE_COMMON_VERIFY_SHA256_H_

#include <string>

#include "absl/status/statusor.h"

namespace tpserve::verify {

// Lower-case hex SHA-256 of the bytes in `data`.
std::string Sha256Hex(const std::string& data);

// Lower-case hex SHA-256 of the file at `path`.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace tpserve::verify

#endif  // TPSERVE_COMMON_VERIFY_SHA256_H_
