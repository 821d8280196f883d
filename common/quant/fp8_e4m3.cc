#include "common/quant/fp8_e4m3.h"

#include <cmath>

#include "common/quant/dequant.h"

namespace tpserve {

uint8_t FloatToFp8E4M3(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  // Everything from 448 up (448 + half an ulp = 464 is a tie that rounds to
  // the even mantissa of 448, and 480's code is NaN) saturates.
  if (a >= kFp8E4M3Max) return sign | 0x7E;
  // With a = n * 2^(e - 3), n in [8, 16), the code is (e + 7) * 8 + (n - 8) =
  // n + 8 * (e + 6): continuous across exponents, so n rounding up to 16
  // lands on the next exponent's first code. Below 2^-6 (subnormals, e fixed
  // at -6) the same formula holds with n = a * 2^9 in [0, 8). The products
  // are exact (powers of two), so nearbyint's ties-to-even is the only
  // rounding.
  int e = -6;
  if (a >= 0.015625f) {
    int exp2 = 0;
    std::frexp(a, &exp2);  // a = f * 2^exp2, f in [0.5, 1)
    e = exp2 - 1;
  }
  const int n = static_cast<int>(std::nearbyint(std::ldexp(a, 3 - e)));
  return static_cast<uint8_t>(sign | (n + 8 * (e + 6)));
}

float RoundToFp8E4M3(float x) { return Fp8E4M3ToFloat(FloatToFp8E4M3(x)); }

}  // namespace tpserve
