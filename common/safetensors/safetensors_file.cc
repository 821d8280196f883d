#include "common/safetensors/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve::safetensors {
namespace {

using nlohmann::json;

// Headers are a few MB even for the largest checkpoints; the cap stops a
// corrupt length from making us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

absl::Status TensorError(const std::string& path, const std::string& name,
                         const std::string& what) {
  return absl::DataLossError(absl::StrCat(path, ": tensor \"", name, "\": ", what));
}

// Parses one header entry into `view` (data pointer relative to the data
// section, fixed up by the caller). Returns the [begin, end) byte range.
absl::Status ParseEntry(const std::string& path, const std::string& name, const json& entry,
                        uint64_t data_size, TensorView* view, uint64_t* begin, uint64_t* end) {
  if (!entry.is_object()) return TensorError(path, name, "header entry is not an object");
  auto dt = entry.find("dtype");
  if (dt == entry.end() || !dt->is_string()) return TensorError(path, name, "missing \"dtype\"");
  auto dtype = ParseDType(dt->get<std::string>());
  if (!dtype) {
    return TensorError(path, name, absl::StrCat("unknown dtype \"", dt->get<std::string>(), "\""));
  }
  view->dtype = *dtype;
  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return TensorError(path, name, "missing or malformed \"shape\"");
  }
  uint64_t numel = 1;
  for (const json& d : *shape) {
    if (!d.is_number_unsigned()) return TensorError(path, name, "shape entries must be >= 0");
    const uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / v) {
      return TensorError(path, name, "shape overflows");
    }
    numel *= v;
    view->shape.push_back(static_cast<int64_t>(v));
  }
  auto offs = entry.find("data_offsets");
  if (offs == entry.end() || !offs->is_array() || offs->size() != 2 ||
      !(*offs)[0].is_number_unsigned() || !(*offs)[1].is_number_unsigned()) {
    return TensorError(path, name, "missing or malformed \"data_offsets\"");
  }
  *begin = (*offs)[0].get<uint64_t>();
  *end = (*offs)[1].get<uint64_t>();
  if (*begin > *end) {
    return TensorError(path, name, absl::StrCat("data_offsets [", *begin, ", ", *end, "] reversed"));
  }
  const uint64_t expected = numel * DTypeSize(*dtype);
  if (*end - *begin != expected) {
    return TensorError(path, name,
                       absl::StrCat("data_offsets span ", *end - *begin, " bytes but ",
                                    DTypeName(*dtype), " ", view->ShapeString(), " needs ",
                                    expected));
  }
  if (*end > data_size) {
    return TensorError(path, name,
                       absl::StrCat("extent [", *begin, ", ", *end, ") runs past the end of the file (",
                                    data_size, " data bytes; truncated download?)"));
  }
  view->nbytes = static_cast<size_t>(expected);
  return absl::OkStatus();
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string what = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(what) : absl::PermissionDeniedError(what);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return absl::DataLossError(
        absl::StrCat(path, ": ", size, " bytes is too short for a safetensors header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = static_cast<const uint8_t*>(map);
  file->size_ = size;

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file->map_[i];
  if (header_len > size - 8) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len,
                                            " runs past the end of the file (", size,
                                            " bytes; truncated download?)"));
  }
  if (header_len > kMaxHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len,
                                            " exceeds the ", kMaxHeaderBytes, "-byte limit"));
  }
  const char* header_begin = reinterpret_cast<const char*>(file->map_ + 8);
  json header = json::parse(header_begin, header_begin + header_len, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header (", header_len,
                                            " bytes) is not a valid JSON object"));
  }
  const uint64_t data_offset = 8 + header_len;
  const uint64_t data_size = size - data_offset;
  struct Extent {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Extent> extents;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return absl::DataLossError(absl::StrCat(path, ": __metadata__ is not an object"));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (m->is_string()) file->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    TensorView view;
    view.name = it.key();
    view.file = path;
    uint64_t begin = 0, end = 0;
    if (auto s = ParseEntry(path, it.key(), *it, data_size, &view, &begin, &end); !s.ok()) return s;
    view.data = file->map_ + data_offset + begin;
    file->names_.push_back(view.name);
    file->tensors_.emplace(view.name, std::move(view));
    extents.push_back({begin, end, it.key()});
  }
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < extents.size(); ++i) {
    if (extents[i].begin < extents[i - 1].end) {
      return TensorError(path, extents[i].name,
                         absl::StrCat("bytes [", extents[i].begin, ", ", extents[i].end,
                                      ") overlap tensor \"", extents[i - 1].name, "\" [",
                                      extents[i - 1].begin, ", ", extents[i - 1].end, ")"));
    }
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), size_);
}

absl::StatusOr<TensorView> SafetensorsFile::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor \"", name, "\""));
  }
  return it->second;
}

}  // namespace tpserve::safetensors
