// Locating the embedded tiny chat model that `tpserve serve` uses when no
// --model is given.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace tpserve::cli {

std::string DefaultModelDir(const std::string& self_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (ec) exe = fs::absolute(self_path, ec);
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("TPSERVE_DEFAULT_MODEL")) candidates.emplace_back(env);
  const fs::path rel = "tests/fixtures/tiny-qwen2-chat";
  // bazel-bin/cli/tpserve.runfiles/tpserve/... (also when started through a
  // symlink, so try the unresolved path too).
  for (const fs::path& p : {fs::path(self_path), exe}) {
    candidates.push_back(fs::path(p.string() + ".runfiles") / "tpserve" / rel);
  }
  // Installed layout: <prefix>/bin/tpserve and <prefix>/share/tpserve/.
  candidates.push_back(exe.parent_path().parent_path() / "share/tpserve/models/tiny-qwen2-chat");
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) candidates.push_back(fs::path(ws) / rel);
  candidates.push_back(fs::current_path(ec) / rel);
  for (const fs::path& c : candidates) {
    if (fs::exists(c / "config.json", ec)) return fs::canonical(c, ec).string();
  }
  return "";
}

}  // namespace tpserve::cli
