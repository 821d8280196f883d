#include "common/quant/dequant.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace tpserve {
namespace {

uint32_t Word(const uint8_t* base, int64_t index) {
  uint32_t w;
  std::memcpy(&w, base + index * 4, 4);
  return w;
}

// Nibble position of column j within an AWQ word (the inverse of kAwqOrder).
constexpr int kAwqPosition[8] = {0, 4, 1, 5, 2, 6, 3, 7};

}  // namespace

int PackedCode(const PackedIntWeight& w, int64_t o, int64_t i) {
  const int pf = 32 / w.bits;
  const uint32_t mask = (1u << w.bits) - 1;
  if (w.awq) {
    return static_cast<int>((Word(w.qweight, i * (w.out / pf) + o / pf) >> (w.bits * kAwqPosition[o % pf])) & mask);
  }
  return static_cast<int>((Word(w.qweight, (i / pf) * w.out + o) >> (w.bits * (i % pf))) & mask);
}

int PackedZero(const PackedIntWeight& w, int64_t g, int64_t o) {
  const int pf = 32 / w.bits;
  const uint32_t mask = (1u << w.bits) - 1;
  const int shift = w.bits * (w.awq ? kAwqPosition[o % pf] : static_cast<int>(o % pf));
  return static_cast<int>((Word(w.qzeros, g * (w.out / pf) + o / pf) >> shift) & mask) + w.zero_offset;
}

int64_t PackedGroup(const PackedIntWeight& w, int64_t i) {
  return w.g_idx != nullptr ? w.g_idx[i] : (w.group_size > 0 ? i / w.group_size : 0);
}

void DequantizePacked(const PackedIntWeight& w, int64_t out_begin, int64_t out_end,
                      int64_t in_begin, int64_t in_end, float* dst) {
  const int64_t width = in_end - in_begin;
  for (int64_t i = in_begin; i < in_end; ++i) {
    const int64_t g = PackedGroup(w, i);
    const float* scale = w.scales + g * w.out;
    for (int64_t o = out_begin; o < out_end; ++o) {
      // q - z is exact in float, then one rounding: what torch computes.
      dst[(o - out_begin) * width + (i - in_begin)] =
          static_cast<float>(PackedCode(w, o, i) - PackedZero(w, g, o)) * scale[o];
    }
  }
}

float Fp8E4M3ToFloat(uint8_t bits) {
  const float sign = (bits & 0x80) != 0 ? -1.0f : 1.0f;
  const int exp = (bits >> 3) & 0xF;
  const int mant = bits & 0x7;
  if (exp == 0xF && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);  // subnormal: m/8 * 2^-6
  return sign * std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
}

void DequantizeFp8(const uint8_t* weight, int64_t in, const float* scale, bool per_channel,
                   int64_t out_begin, int64_t out_end, int64_t in_begin, int64_t in_end,
                   float* dst) {
  float table[256];
  for (int b = 0; b < 256; ++b) table[b] = Fp8E4M3ToFloat(static_cast<uint8_t>(b));
  const int64_t width = in_end - in_begin;
  for (int64_t o = out_begin; o < out_end; ++o) {
    const float s = per_channel ? scale[o] : scale[0];
    const uint8_t* row = weight + o * in;
    float* out = dst + (o - out_begin) * width;
    for (int64_t i = in_begin; i < in_end; ++i) out[i - in_begin] = table[row[i]] * s;
  }
}

}  // namespace tpserve
