// `tpserve verify <dir>`: checks a model folder completely before it is
// deployed, because broken checkpoints (truncated downloads, a missing shard,
// a config from another model) are the most common deployment failure.
#ifndef TPSERVE_COMMON_VERIFY_VERIFY_H_
#define TPSERVE_COMMON_VERIFY_VERIFY_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace tpserve::verify {

// What VerifyModelDir found. Errors make the folder unusable; warnings do not.
struct VerifyReport {
  std::string dir;
  // One line per passed check (e.g. "config.json: Qwen2ForCausalLM, 24 layers").
  std::vector<std::string> passed;
  std::vector<std::string> warnings;
  std::vector<std::string> errors;
  int num_tensors = 0;
  int64_t tensor_bytes = 0;
  int files_hashed = 0;

  // True when no error was found.
  bool ok() const { return errors.empty(); }
};

// Runs every check on `dir`: config.json and generation_config.json parse;
// every safetensors header is valid (lengths, JSON, dtypes, extents, no
// overlaps); the index names only existing shards; every tensor the config
// needs is present with the right shape and a float dtype; no weight holds
// NaN/Inf; and, when a `SHA256SUMS` manifest ("<hex>  <file>" lines) is
// present, every listed file's SHA-256 matches. Never throws or crashes on
// bad input; everything lands in the report.
VerifyReport VerifyModelDir(const std::string& dir);

// Prints `report` for a human and returns the process exit code (0 when OK,
// 1 when any error was found).
int PrintVerifyReport(const VerifyReport& report, std::ostream& out);

// VerifyModelDir + PrintVerifyReport: what `tpserve verify <dir>` runs.
int RunVerify(const std::string& dir, std::ostream& out);

}  // namespace tpserve::verify

#endif  // TPSERVE_COMMON_VERIFY_VERIFY_H_
