#include "fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace tpserve::fuzz {
namespace {
std::string& Argv0() {
  static std::string argv0;
  return argv0;
}
}  // namespace

std::vector<std::string_view> SplitParts(const uint8_t* data, size_t size, size_t max_parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    size_t cut = rest.find(kPartSeparator);
    if (cut == std::string_view::npos) break;
    parts.push_back(rest.substr(0, cut));
    rest.remove_prefix(cut + kPartSeparator.size());
  }
  parts.push_back(rest);
  return parts;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

void SetArgv0(const char* argv0) {
  if (argv0 != nullptr) Argv0() = argv0;
}

std::string FixturePath(const std::string& rel) {
  std::vector<std::string> candidates = {rel};
  if (const char* dir = std::getenv("TPSERVE_WORKSPACE")) candidates.push_back(std::string(dir) + "/" + rel);
  if (!Argv0().empty()) candidates.push_back(Argv0() + ".runfiles/tpserve/" + rel);
  if (const char* dir = std::getenv("RUNFILES_DIR")) candidates.push_back(std::string(dir) + "/tpserve/" + rel);
  for (const std::string& c : candidates) {
    std::error_code ec;
    if (std::filesystem::exists(c, ec)) return c;
  }
  std::fprintf(stderr, "fuzz: fixture %s not found; run from the workspace root or set TPSERVE_WORKSPACE\n",
               rel.c_str());
  std::abort();
}

}  // namespace tpserve::fuzz
