// A HuggingFace model folder's weights: a single model.safetensors, or shards
// listed by model.safetensors.index.json. All shards are mapped at open and
// their headers validated; tensor data is read lazily through TensorViews.
#ifndef TPSERVE_COMMON_SAFETENSORS_CHECKPOINT_H_
#define TPSERVE_COMMON_SAFETENSORS_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/safetensors_file.h"

namespace tpserve::safetensors {

// All weight files of one model folder.
class Checkpoint {
 public:
  // Opens `dir`. Errors name the file at fault: a malformed index, an index
  // naming a missing shard, a shard lacking a tensor the index assigns it, or
  // any SafetensorsFile::Open error.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  // Paths of the weight files, in the order opened.
  std::vector<std::string> files() const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  // Whether some shard holds `name`.
  bool Has(const std::string& name) const { return index_.count(name) > 0; }
  // The tensor; NOT_FOUND naming the folder and the tensor otherwise.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  // Like Get, and fails (naming file, tensor and both shapes) unless the
  // tensor has exactly `shape`.
  absl::StatusOr<TensorView> GetWithShape(const std::string& name,
                                          const std::vector<int64_t>& shape) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  // tensor name -> index into files_.
  std::map<std::string, size_t> index_;
};

}  // namespace tpserve::safetensors

#endif  // TPSERVE_COMMON_SAFETENSORS_CHECKPOINT_H_
