// Writes safetensors files (tests, dummy checkpoints, tools). Tensors are laid
// out in the given order; the header is space-padded to 8 bytes as the
// reference implementation does.
#ifndef TPSERVE_COMMON_SAFETENSORS_WRITER_H_
#define TPSERVE_COMMON_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/safetensors/dtype.h"

namespace tpserve::safetensors {

// One tensor to write: raw little-endian bytes matching dtype and shape.
struct TensorData {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// A float32 tensor from values (convenience for tests).
TensorData Float32Tensor(const std::string& name, std::vector<int64_t> shape,
                         const std::vector<float>& values);

// The serialized file contents.
std::string SerializeSafetensors(const std::vector<TensorData>& tensors,
                                 const std::map<std::string, std::string>& metadata = {});

// Writes SerializeSafetensors(...) to `path`.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorData>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace tpserve::safetensors

#endif  // TPSERVE_COMMON_SAFETENSORS_WRITER_H_
