// Helpers shared by the fuzz targets: splitting one input into parts, and
// finding test fixtures from a fuzzer binary run by hand, by CI or by Bazel.
#ifndef TPSERVE_FUZZ_FUZZ_UTIL_H_
#define TPSERVE_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tpserve::fuzz {

// The separator between the parts of one input. Text, so that seed corpora
// stay readable and editable; libFuzzer learns it from the comparisons.
inline constexpr std::string_view kPartSeparator = "\n---\n";

// Splits `data` at kPartSeparator into at most `max_parts` parts (the last
// part keeps any further separators).
std::vector<std::string_view> SplitParts(const uint8_t* data, size_t size, size_t max_parts);

// Aborts with "invariant broken: <what>" when `ok` is false: a finding.
void Check(bool ok, const char* what);

// Remembers argv[0], so that FixturePath can look beside the binary.
void SetArgv0(const char* argv0);

// The path of `rel` (relative to the workspace root): as given when the
// working directory is the workspace root (or a test's runfiles root), else
// inside the binary's runfiles tree. Aborts with a message when not found:
// a fuzzer without its fixture would fuzz nothing.
std::string FixturePath(const std::string& rel);

}  // namespace tpserve::fuzz

#endif  // TPSERVE_FUZZ_FUZZ_UTIL_H_
