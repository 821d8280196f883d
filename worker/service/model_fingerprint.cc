#include "worker/service/model_fingerprint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tpserve::worker {
namespace {

namespace fs = std::filesystem;

// FNV-1a 64: tiny, stable across builds and machines.
class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      hash_ ^= p[i];
      hash_ *= 0x100000001b3ull;
    }
  }
  void Add(const std::string& s) {
    const uint64_t n = s.size();
    Add(&n, sizeof(n));  // length-prefixed so concatenations cannot collide
    Add(s.data(), s.size());
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The 8-byte length and the JSON header of a .safetensors file.
absl::StatusOr<std::string> SafetensorsHeader(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t len = 0;
  if (!in.read(reinterpret_cast<char*>(&len), sizeof(len)) || len > (100u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not a safetensors file"));
  }
  std::string header(len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(len))) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": truncated safetensors header"));
  }
  return header;
}

}  // namespace

absl::StatusOr<std::string> ModelFingerprint(const std::string& model_path,
                                             const std::string& load_format,
                                             uint64_t seed) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(model_path, ec);
  const fs::path dir = is_dir ? fs::path(model_path) : fs::path(model_path).parent_path();
  const fs::path config = is_dir ? dir / "config.json" : fs::path(model_path);
  absl::StatusOr<std::string> config_text = ReadFile(config);
  if (!config_text.ok()) return config_text.status();
  Fnv1a h;
  h.Add(*config_text);
  if (load_format == "dummy") {
    h.Add(absl::StrCat("dummy:", seed));
  } else {
    if (fs::exists(dir / "model.safetensors.index.json")) {
      absl::StatusOr<std::string> index = ReadFile(dir / "model.safetensors.index.json");
      if (!index.ok()) return index.status();
      h.Add(*index);
    }
    std::vector<fs::path> shards;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".safetensors") shards.push_back(entry.path());
    }
    std::sort(shards.begin(), shards.end());
    for (const fs::path& shard : shards) {
      h.Add(shard.filename().string());
      const uint64_t size = fs::file_size(shard, ec);
      h.Add(&size, sizeof(size));
      absl::StatusOr<std::string> header = SafetensorsHeader(shard);
      if (!header.ok()) return header.status();
      h.Add(*header);
    }
  }
  return absl::StrFormat("%016x", h.value());
}

}  // namespace tpserve::worker
