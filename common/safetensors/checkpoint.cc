#include "common/safetensors/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve::safetensors {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  if (!fs::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a directory"));
  }
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  const fs::path index_path = fs::path(dir) / kIndexFile;
  if (!fs::exists(index_path)) {
    const fs::path single = fs::path(dir) / kSingleFile;
    if (!fs::exists(single)) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": neither ", kSingleFile, " nor ", kIndexFile, " found"));
    }
    auto file = SafetensorsFile::Open(single.string());
    if (!file.ok()) return file.status();
    for (const std::string& name : (*file)->names()) ckpt->index_[name] = 0;
    ckpt->files_.push_back(std::move(*file));
    return ckpt;
  }

  const std::string index_name = index_path.string();
  std::ifstream in(index_path);
  std::stringstream text;
  text << in.rdbuf();
  json index = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::DataLossError(absl::StrCat(index_name, ": not a valid JSON object"));
  }
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object() || map->empty()) {
    return absl::DataLossError(
        absl::StrCat(index_name, ": key \"weight_map\" missing or not a non-empty object"));
  }
  std::map<std::string, size_t> shard_ids;
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->is_string()) {
      return absl::DataLossError(absl::StrCat(index_name, ": weight_map entry for tensor \"",
                                              it.key(), "\" is not a file name"));
    }
    const std::string shard = it->get<std::string>();
    if (shard.empty() || fs::path(shard).is_absolute() || shard.find("..") != std::string::npos) {
      return absl::DataLossError(absl::StrCat(index_name, ": tensor \"", it.key(),
                                              "\" maps to an invalid shard name \"", shard, "\""));
    }
    auto [pos, inserted] = shard_ids.emplace(shard, ckpt->files_.size());
    if (inserted) {
      const fs::path shard_path = fs::path(dir) / shard;
      std::error_code ec;  // e.g. a name too long: NOT_FOUND, not a throw
      if (!fs::exists(shard_path, ec)) {
        return absl::NotFoundError(absl::StrCat(index_name, ": names shard \"", shard,
                                                "\" (for tensor \"", it.key(),
                                                "\"), which does not exist"));
      }
      auto file = SafetensorsFile::Open(shard_path.string());
      if (!file.ok()) return file.status();
      ckpt->files_.push_back(std::move(*file));
    }
    const SafetensorsFile& file = *ckpt->files_[pos->second];
    if (!file.Has(it.key())) {
      return absl::DataLossError(absl::StrCat(index_name, ": maps tensor \"", it.key(),
                                              "\" to ", file.path(), ", which lacks it"));
    }
    ckpt->index_[it.key()] = pos->second;
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, unused] : index_) out.push_back(name);
  return out;
}

absl::StatusOr<TensorView> Checkpoint::Get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": missing tensor \"", name, "\""));
  }
  return files_[it->second]->Get(name);
}

absl::StatusOr<TensorView> Checkpoint::GetWithShape(const std::string& name,
                                                    const std::vector<int64_t>& shape) const {
  auto view = Get(name);
  if (!view.ok()) return view.status();
  if (view->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        view->file, ": tensor \"", name, "\" has shape ", view->ShapeString(),
        " but the config needs [", absl::StrJoin(shape, ", "), "]"));
  }
  return view;
}

}  // namespace tpserve::safetensors
