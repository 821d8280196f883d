#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tpserve {

absl::Status InitLogging(std::string_view component, std::string_view level) {
  std::string lvl(level);
  if (lvl == "warn") lvl = "warning";
  spdlog::level::level_enum parsed = spdlog::level::from_str(lvl);
  // from_str answers "off" for anything it does not know.
  if (parsed == spdlog::level::off && lvl != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log-level: unknown level '", std::string(level),
        "' (accepted: trace, debug, info, warning, error, critical, off)"));
  }
  spdlog::drop(std::string(component));
  auto logger = spdlog::stderr_color_mt(std::string(component));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %L %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace tpserve
