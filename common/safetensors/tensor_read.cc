#include "common/safetensors/tensor_read.h"

#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::safetensors {
namespace {

std::string Where(const TensorView& t) { return absl::StrCat(t.file, ": tensor \"", t.name, "\""); }

absl::Status RequireFloat(const TensorView& t) {
  if (!IsFloat(t.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(t), ": dtype ", DTypeName(t.dtype), " is not a floating type"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(const TensorView& t, int64_t begin, int64_t end, int64_t limit,
                        const char* what) {
  if (begin < 0 || end < begin || end > limit) {
    return absl::OutOfRangeError(absl::StrCat(Where(t), ": ", what, " [", begin, ", ", end,
                                              ") outside [0, ", limit, ") of shape ",
                                              t.ShapeString()));
  }
  return absl::OkStatus();
}

// Rows and columns of a 1-D (one row per element) or 2-D tensor.
absl::Status RowsCols(const TensorView& t, int64_t* rows, int64_t* cols) {
  if (t.shape.size() == 1) {
    *rows = t.shape[0];
    *cols = 1;
  } else if (t.shape.size() == 2) {
    *rows = t.shape[0];
    *cols = t.shape[1];
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(t), ": expected a 1-D or 2-D tensor, got shape ", t.ShapeString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<float>> ReadFloat32(const TensorView& tensor) {
  if (auto s = RequireFloat(tensor); !s.ok()) return s;
  std::vector<float> out(static_cast<size_t>(tensor.numel()));
  ConvertToFloat32(tensor.dtype, tensor.data, out.size(), out.data());
  return out;
}

absl::StatusOr<TensorView> SliceRows(const TensorView& tensor, int64_t begin, int64_t end) {
  int64_t rows = 0, cols = 0;
  if (auto s = RowsCols(tensor, &rows, &cols); !s.ok()) return s;
  if (auto s = CheckRange(tensor, begin, end, rows, "rows"); !s.ok()) return s;
  TensorView out = tensor;
  const size_t row_bytes = static_cast<size_t>(cols) * DTypeSize(tensor.dtype);
  out.data = tensor.data + static_cast<size_t>(begin) * row_bytes;
  out.nbytes = static_cast<size_t>(end - begin) * row_bytes;
  out.shape[0] = end - begin;
  return out;
}

absl::StatusOr<std::vector<float>> ReadRowsFloat32(const TensorView& tensor, int64_t begin,
                                                   int64_t end) {
  auto slice = SliceRows(tensor, begin, end);
  if (!slice.ok()) return slice.status();
  return ReadFloat32(*slice);
}

absl::StatusOr<std::vector<uint8_t>> CopyColumnsRaw(const TensorView& tensor, int64_t begin,
                                                    int64_t end) {
  if (tensor.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(tensor), ": column slice needs a 2-D tensor, got shape ",
                     tensor.ShapeString()));
  }
  const int64_t rows = tensor.shape[0], cols = tensor.shape[1];
  if (auto s = CheckRange(tensor, begin, end, cols, "columns"); !s.ok()) return s;
  const size_t es = DTypeSize(tensor.dtype);
  const size_t width = static_cast<size_t>(end - begin) * es;
  std::vector<uint8_t> out(static_cast<size_t>(rows) * width);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(out.data() + r * width, tensor.data + (r * cols + begin) * es, width);
  }
  return out;
}

absl::StatusOr<std::vector<float>> ReadColumnsFloat32(const TensorView& tensor, int64_t begin,
                                                      int64_t end) {
  if (auto s = RequireFloat(tensor); !s.ok()) return s;
  // The raw column block is rows x width elements of the tensor's dtype, in
  // row order: converting it whole gives the float32 slice.
  absl::StatusOr<std::vector<uint8_t>> raw = CopyColumnsRaw(tensor, begin, end);
  if (!raw.ok()) return raw.status();
  std::vector<float> out(raw->size() / DTypeSize(tensor.dtype));
  ConvertToFloat32(tensor.dtype, raw->data(), out.size(), out.data());
  return out;
}

absl::StatusOr<std::vector<int32_t>> ReadInt32(const TensorView& tensor) {
  std::vector<int32_t> out(static_cast<size_t>(tensor.numel()));
  if (tensor.dtype == DType::kI32) {
    std::memcpy(out.data(), tensor.data, out.size() * 4);
  } else if (tensor.dtype == DType::kI64) {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, tensor.data + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        return absl::OutOfRangeError(absl::StrCat(Where(tensor), ": value ", v, " exceeds int32"));
      }
      out[i] = static_cast<int32_t>(v);
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(tensor), ": dtype ", DTypeName(tensor.dtype), " is not I32/I64"));
  }
  return out;
}

}  // namespace tpserve::safetensors
