// API keys: the accepted set from --api-key and --api-key-file, checked
// against "Authorization: Bearer <key>" in constant time.
#ifndef TPSERVE_GATEWAY_API_KEYS_H_
#define TPSERVE_GATEWAY_API_KEYS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tpserve::gateway {

// The keys a gateway accepts. Empty means the API is open.
class ApiKeys {
 public:
  // Keys from flags plus one key per non-empty line of `key_file` (if set;
  // surrounding whitespace is trimmed, lines starting with '#' skipped). A
  // missing or unreadable file is an error, never an open server.
  static absl::StatusOr<ApiKeys> Load(const std::vector<std::string>& keys,
                                      const std::string& key_file);

  // True when no key is configured.
  bool open() const { return keys_.empty(); }

  // OK if the API is open or `authorization_header` is "Bearer <key>" for an
  // accepted key; UNAUTHENTICATED otherwise. Compares every key in full, in
  // time that does not depend on where the bytes differ.
  absl::Status Check(const std::string& authorization_header) const;

 private:
  std::vector<std::string> keys_;
};

// Constant-time equality of two strings (the length still leaks).
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_API_KEYS_H_
