// A memory-mapped safetensors file (https://huggingface.co/docs/safetensors):
// 8-byte little-endian header length, a JSON header naming every tensor's
// dtype, shape and byte range, then the data. Opening validates the whole
// header (lengths, JSON, dtypes, extents, overlaps) so that later reads never
// go past the mapping; tensor data pages are only touched when read.
#ifndef TPSERVE_COMMON_SAFETENSORS_SAFETENSORS_FILE_H_
#define TPSERVE_COMMON_SAFETENSORS_SAFETENSORS_FILE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/dtype.h"

namespace tpserve::safetensors {

// A tensor inside a mapped file: its raw little-endian bytes, row-major, no
// copy. Valid while the SafetensorsFile (or Checkpoint) that produced it is
// alive. The CUDA loader copies `data` straight to the device.
struct TensorView {
  std::string name;
  // File the tensor lives in (for error messages).
  std::string file;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  // First byte of the tensor in the mapping (not necessarily aligned).
  const uint8_t* data = nullptr;
  // Bytes of the whole tensor: numel() * DTypeSize(dtype).
  size_t nbytes = 0;

  // Number of elements (1 for a 0-d tensor).
  int64_t numel() const;
  // "[a, b]" for messages.
  std::string ShapeString() const;
};

// One opened, validated, memory-mapped file.
class SafetensorsFile {
 public:
  // Maps and validates `path`. Errors (INVALID_ARGUMENT / DATA_LOSS /
  // NOT_FOUND) name the file and, where one is at fault, the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // The path it was opened from.
  const std::string& path() const { return path_; }
  // Size of the file in bytes.
  size_t file_size() const { return size_; }
  // Tensor names, sorted.
  const std::vector<std::string>& names() const { return names_; }
  // Whether the file holds `name`.
  bool Has(const std::string& name) const { return tensors_.count(name) > 0; }
  // The tensor called `name`; NOT_FOUND naming file and tensor otherwise.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  // The "__metadata__" string map (may be empty).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tpserve::safetensors

#endif  // TPSERVE_COMMON_SAFETENSORS_SAFETENSORS_FILE_H_
