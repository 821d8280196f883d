// Fuzzes `tpserve verify` on a model folder built from the input: it must
// finish with a report (never crash, hang or throw) whatever config.json,
// weights, index and SHA256SUMS it finds.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

void Put(const char* name, std::string_view content) {
  std::ofstream out(fs::path(Dir()) / name, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

}  // namespace

// Input: config.json, model.safetensors, model.safetensors.index.json and
// SHA256SUMS, separated by "\n---\n"; the files a part does not reach are
// absent.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kNames[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                       "SHA256SUMS"};
  auto parts = tpserve::fuzz::SplitParts(data, size, 4);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Dir(), ec)) fs::remove(e.path(), ec);
  for (size_t i = 0; i < parts.size(); ++i) Put(kNames[i], parts[i]);
  tpserve::verify::VerifyReport report = tpserve::verify::VerifyModelDir(Dir());
  std::ostringstream printed;
  if (tpserve::verify::PrintVerifyReport(report, printed) != (report.ok() ? 0 : 1)) {
    std::fprintf(stderr, "invariant broken: exit code disagrees with the report\n");
    std::abort();
  }
  return 0;
}
