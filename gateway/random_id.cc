#include "gateway/random_id.h"

#include <cstdio>
#include <random>

namespace tpserve::gateway {

std::string RandomId(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

}  // namespace tpserve::gateway
