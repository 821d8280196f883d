#include "common/security/group_token.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace tpserve {

std::string NewGroupToken() {
  // libstdc++'s random_device reads getrandom(2) / /dev/urandom.
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  token.reserve(32);
  for (int i = 0; i < 4; ++i) {
    uint32_t word = rd();
    for (int j = 0; j < 8; ++j, word >>= 4) token.push_back(kHex[word & 0xf]);
  }
  return token;
}

absl::Status ValidateGroupToken(std::string_view token) {
  if (token.size() < 32 || token.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group_token must be 32 to 128 hex digits; got ", token.size(), " characters"));
  }
  for (char c : token) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError("group_token must be lowercase hex digits");
    }
  }
  return absl::OkStatus();
}

void AttachGroupToken(grpc::ClientContext* context, std::string_view token) {
  if (!token.empty()) context->AddMetadata(kGroupTokenKey, std::string(token));
}

absl::Status CheckGroupToken(const grpc::ServerContextBase& context, std::string_view expected,
                             std::string_view call) {
  if (expected.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kGroupTokenKey);
  // Compare every byte whatever the first difference, so timing does not
  // reveal a prefix.
  bool same = false;
  if (it != metadata.end() && it->second.size() == expected.size()) {
    unsigned diff = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      diff |= static_cast<unsigned char>(it->second.data()[i]) ^ static_cast<unsigned char>(expected[i]);
    }
    same = diff == 0;
  }
  if (same) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      std::string(call), ": the call does not carry this worker group's token; only the router that formed the "
            "group (InitDistributed) and rank 0's relay may call it"));
}

}  // namespace tpserve
