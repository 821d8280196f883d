#include "common/env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"

namespace tpserve {

std::optional<std::string> EnvValue(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

int EnvIntInRange(const char* name, int lo, int hi, int fallback) {
  const std::optional<std::string> v = EnvValue(name);
  int n = 0;
  if (!v.has_value() || !absl::SimpleAtoi(*v, &n) || n < lo || n > hi) return fallback;
  return n;
}

bool EnvSwitch(const char* name, bool fallback) {
  const std::optional<std::string> v = EnvValue(name);
  if (v == "0") return false;
  if (v == "1") return true;
  return fallback;
}

}  // namespace tpserve
