// Dequantization of one linear layer's weight to float32, exact with respect
// to the formats' documented layouts (docs/quantization.md). The output is a
// rectangle of the logical PyTorch weight W[out, in], so a tensor-parallel
// rank dequantizes only its own rows or columns.
#ifndef TPSERVE_COMMON_QUANT_DEQUANT_H_
#define TPSERVE_COMMON_QUANT_DEQUANT_H_

#include <cstdint>

namespace tpserve {

// AWQ's interleaved order: nibble i of a word holds column 8c + kAwqOrder[i].
inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Packed integer weights of one layer (AWQ or GPTQ). Pointers are the raw
// little-endian tensor bytes (need not be aligned).
struct PackedIntWeight {
  // AWQ: qweight [in, out/8] and qzeros [groups, out/8], both packed along
  // the output in kAwqOrder. GPTQ: qweight [in/(32/bits), out] packed along
  // the input, qzeros [groups, out/(32/bits)] packed along the output, both
  // in sequential order.
  bool awq = false;
  int bits = 4;
  int64_t out = 0, in = 0;
  // Inputs per group; 0 = one group.
  int group_size = 0;
  const uint8_t* qweight = nullptr;
  const uint8_t* qzeros = nullptr;
  // [groups, out], already float32.
  const float* scales = nullptr;
  // [in] group of each input (GPTQ); nullptr = i / group_size.
  const int32_t* g_idx = nullptr;
  // Added to every stored zero point (1 for GPTQ v1 checkpoints).
  int zero_offset = 0;
};

// The stored code q[o, i], the zero point of group g for output o (with
// zero_offset added) and the group of input i: the pieces of the formula
// below, for backends that keep the codes (worker/cuda/int_repack.h).
int PackedCode(const PackedIntWeight& w, int64_t o, int64_t i);
int PackedZero(const PackedIntWeight& w, int64_t g, int64_t o);
int64_t PackedGroup(const PackedIntWeight& w, int64_t i);

// W[o, i] = (q[o, i] - (z[g(i), o] + zero_offset)) * s[g(i), o] for
// o in [out_begin, out_end), i in [in_begin, in_end), written row-major to
// `dst` ([out_end - out_begin, in_end - in_begin]). Ranges must be valid.
void DequantizePacked(const PackedIntWeight& w, int64_t out_begin, int64_t out_end,
                      int64_t in_begin, int64_t in_end, float* dst);

// An FP8 E4M3 ("e4m3fn": no infinities, 0x7F/0xFF are NaN) value, exact.
float Fp8E4M3ToFloat(uint8_t bits);

// FP8 weight [out, in] times its scale: one value (`per_channel` false) or
// one per output row.
void DequantizeFp8(const uint8_t* weight, int64_t in, const float* scale, bool per_channel,
                   int64_t out_begin, int64_t out_end, int64_t in_begin, int64_t in_end,
                   float* dst);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_DEQUANT_H_
