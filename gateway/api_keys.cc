#include "gateway/api_keys.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace tpserve::gateway {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Walk the longer length so the time depends only on the lengths.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  // Keep the compiler from short-circuiting the loop.
  volatile unsigned char result = diff;
  return result == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::vector<std::string>& keys,
                                      const std::string& key_file) {
  ApiKeys out;
  for (const std::string& key : keys) {
    std::string k(absl::StripAsciiWhitespace(key));
    if (k.empty()) return absl::InvalidArgumentError("--api-key must not be empty");
    out.keys_.push_back(k);
  }
  if (!key_file.empty()) {
    std::ifstream in(key_file);
    if (!in) return absl::NotFoundError("cannot read --api-key-file " + key_file);
    std::string line;
    while (std::getline(in, line)) {
      std::string k(absl::StripAsciiWhitespace(line));
      if (k.empty() || k[0] == '#') continue;
      out.keys_.push_back(k);
    }
    if (out.keys_.empty()) {
      return absl::InvalidArgumentError("--api-key-file " + key_file + " holds no key");
    }
  }
  return out;
}

absl::Status ApiKeys::Check(const std::string& authorization_header) const {
  if (keys_.empty()) return absl::OkStatus();
  std::string header(absl::StripAsciiWhitespace(authorization_header));
  constexpr char kBearer[] = "bearer ";
  if (header.size() < sizeof(kBearer) - 1 ||
      !absl::EqualsIgnoreCase(header.substr(0, sizeof(kBearer) - 1), kBearer)) {
    return absl::UnauthenticatedError(
        "missing API key: send it as 'Authorization: Bearer <key>'");
  }
  std::string presented(absl::StripAsciiWhitespace(header.substr(sizeof(kBearer) - 1)));
  bool match = false;
  // No early exit: every key is compared whatever the outcome.
  for (const std::string& key : keys_) match |= ConstantTimeEquals(presented, key);
  if (!match) return absl::UnauthenticatedError("invalid API key");
  return absl::OkStatus();
}

}  // namespace tpserve::gateway
