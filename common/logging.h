// Logging through spdlog (Debian's libspdlog). Components call InitLogging
// once, then use spdlog::info/warn/error with fmt-style format strings.
#ifndef TPSERVE_COMMON_LOGGING_H_
#define TPSERVE_COMMON_LOGGING_H_

#include <spdlog/spdlog.h>

#include <string_view>

#include "absl/status/status.h"

namespace tpserve {

// Sets the process-wide logger: lines go to stderr as
// "2026-11-26 01:02:03.456 <component> I message". `level` is one of
// trace, debug, info, warning, error, critical, off.
absl::Status InitLogging(std::string_view component, std::string_view level);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_LOGGING_H_
