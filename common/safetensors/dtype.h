// Element types found in safetensors files and their conversion to float32.
#ifndef TPSERVE_COMMON_SAFETENSORS_DTYPE_H_
#define TPSERVE_COMMON_SAFETENSORS_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tpserve::safetensors {

// The safetensors dtype names ("BF16", "F32", ...). Weights are BF16/F16/F32;
// the others appear in auxiliary files (goldens, quantisation scales).
// F8_E4M3 holds FP8 checkpoint weights; it is not IsFloat (it needs its scale:
// common/quant dequantizes it).
enum class DType { kBF16, kF16, kF32, kF64, kI8, kU8, kI16, kI32, kI64, kBool, kF8E4M3 };

// Bytes per element.
size_t DTypeSize(DType dtype);
// The name as written in a header ("BF16").
std::string DTypeName(DType dtype);
// Parses a header name; nullopt for names this reader does not know.
std::optional<DType> ParseDType(const std::string& name);
// True for the floating types that convert to float32 (BF16, F16, F32, F64).
bool IsFloat(DType dtype);

// bfloat16 / IEEE half bit patterns to float32 (exact).
float Bf16ToFloat(uint16_t bits);
float F16ToFloat(uint16_t bits);
// float32 to bfloat16, round to nearest even (what PyTorch does).
uint16_t FloatToBf16(float value);

// Converts `count` elements of a floating dtype starting at `src` (which need
// not be aligned) to float32. `dtype` must satisfy IsFloat.
void ConvertToFloat32(DType dtype, const uint8_t* src, size_t count, float* dst);

}  // namespace tpserve::safetensors

#endif  // TPSERVE_COMMON_SAFETENSORS_DTYPE_H_
