// Fuzzes `tpserve verify` on a model folder built from the input: it must
// finish with a report (never crash, hang or throw) whatever config.json,
// weights, index and SHA256SUMS it finds.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>

#include "common/verify/verify.h"
#include "fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;

// A private folder in memory-backed /dev/shm when there is one.
const std::string& Dir() {
  static const std::string dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("tpserve-verify-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

// Plain system calls: an ofstream's buffer (and a directory listing to clear
// the folder) are allocations that ASan fills, on every execution.
void Put(const std::string& path, std::string_view content) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  for (size_t done = 0; done < content.size();) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace

// Input: config.json, model.safetensors, model.safetensors.index.json and
// SHA256SUMS, separated by "\n---\n"; the files a part does not reach are
// absent.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kPaths[] = {Dir() + "/config.json", Dir() + "/model.safetensors",
                                       Dir() + "/model.safetensors.index.json", Dir() + "/SHA256SUMS"};
  auto parts = tpserve::fuzz::SplitParts(data, size, 4);
  // Only these four names are ever written, so removing them empties the
  // folder (the files the previous input had but this one does not reach).
  for (size_t i = parts.size(); i < 4; ++i) unlink(kPaths[i].c_str());
  for (size_t i = 0; i < parts.size(); ++i) Put(kPaths[i], parts[i]);
  tpserve::verify::VerifyReport report = tpserve::verify::VerifyModelDir(Dir());
  std::ostringstream printed;
  if (tpserve::verify::PrintVerifyReport(report, printed) != (report.ok() ? 0 : 1)) {
    std::fprintf(stderr, "invariant broken: exit code disagrees with the report\n");
    std::abort();
  }
  return 0;
}
