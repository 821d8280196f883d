// Float32 to FP8 E4M3 ("e4m3fn": bias 7, no infinities, 0x7F/0xFF NaN), the
// encoding the FP8 KV cache stores: round to nearest even, saturating to
// +-448 as CUDA's __NV_SATFINITE conversion does, so the CPU backend's cache
// holds the values the GPU's cache write produces (the decoder is
// dequant.h's Fp8E4M3ToFloat).
#ifndef TPSERVE_COMMON_QUANT_FP8_E4M3_H_
#define TPSERVE_COMMON_QUANT_FP8_E4M3_H_

#include <cstdint>

namespace tpserve {

// The largest finite E4M3 value.
inline constexpr float kFp8E4M3Max = 448.0f;

// E4M3 code of `x`: nearest value, ties to even mantissa; |x| >= 448 and
// +-inf give +-448 (0x7E / 0xFE); NaN gives 0x7F; magnitudes at or below
// 2^-10 (half the smallest subnormal) give a signed zero.
uint8_t FloatToFp8E4M3(float x);

// Fp8E4M3ToFloat(FloatToFp8E4M3(x)): x rounded to E4M3, as a float.
float RoundToFp8E4M3(float x);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_FP8_E4M3_H_
