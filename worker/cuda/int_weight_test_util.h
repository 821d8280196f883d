// Random packed int4 / int8 weights in the canonical layout and their device
// copies (row by row or tiled), for the int GEMV and GEMM tests.
#ifndef TPSERVE_WORKER_CUDA_INT_WEIGHT_TEST_UTIL_H_
#define TPSERVE_WORKER_CUDA_INT_WEIGHT_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/int_repack.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda::testing {

// A random weight in the canonical layout (random codes, zero points and
// scales; a random input permutation when `act_order`).
inline IntRepacked RandomWeight(int bits, int n, int k, int group, bool act_order, std::mt19937& rng) {
  IntRepacked r;
  r.bits = bits;
  r.group = group;
  r.n = n;
  r.k = k;
  r.codes.resize(static_cast<size_t>(n) * k * bits / 32);
  for (auto& w : r.codes) w = rng();
  const size_t groups = static_cast<size_t>(n) * (k / group);
  std::uniform_real_distribution<float> scale(0.002f, 0.03f);
  std::uniform_int_distribution<int> zero(0, 1 << bits);  // GPTQ v1's +1 reaches 2^bits
  for (size_t g = 0; g < groups; ++g) {
    r.scale.push_back(scale(rng));
    r.zero.push_back(static_cast<uint16_t>(zero(rng)));
  }
  if (act_order) {
    r.perm.resize(k);
    std::iota(r.perm.begin(), r.perm.end(), 0);
    std::shuffle(r.perm.begin(), r.perm.end(), rng);
  }
  return r;
}

// The weight's device copy and its view, row by row or (TileIntCodes) tiled.
struct DevWeight {
  DevArray<uint32_t> codes, tiled_codes;
  DevArray<float> scale;
  DevArray<uint16_t> zero;
  DevArray<int32_t> perm;
  IntWeightView view;
  explicit DevWeight(const IntRepacked& r, bool tiled = false)
      : codes(r.codes),
        tiled_codes(tiled ? r.codes.size() : 1),
        scale(r.scale),
        zero(r.zero),
        perm(r.perm.empty() ? std::vector<int32_t>{0} : r.perm) {
    view = {codes.get(), scale.get(), zero.get(), r.perm.empty() ? nullptr : perm.get(), r.bits, r.group};
    if (tiled) {
      EXPECT_TRUE(TileIntCodes(view, static_cast<int>(r.n), static_cast<int>(r.k), tiled_codes.get(), nullptr).ok());
      view.codes = tiled_codes.get();
      view.tiled = true;
    }
  }
};

// The fused SiLU·mul's value for x row `row` and activation i, from the
// dequantized [gate; up] weight w ([2 inter, k], original input order) and
// float x, and how far a kernel's bf16 result may be from it: `rounding` per
// unit of (|gate| + 1)(|up| + 1) for the bf16 roundings of gate, up, silu and
// the product (each within 2^-8 of its value), plus the fp32 sums' error (1e-5
// of the terms' magnitude, as in the plain GEMV's check) carried through silu
// (slope <= 1.1) and the product: with k = 18,944 the sums cancel enough for
// it to matter.
struct SiluMulExpected {
  double want, tol, gate, up;
};
inline SiluMulExpected SiluMulReference(const std::vector<float>& w, const std::vector<float>& xf, int row, int i,
                                        int inter, int k, double rounding) {
  double gate = 0, up = 0, gate_mag = 0, up_mag = 0;
  for (int c = 0; c < k; ++c) {
    const double xv = xf[static_cast<size_t>(row) * k + c];
    const double gp = w[static_cast<size_t>(i) * k + c] * xv;
    const double up_p = w[static_cast<size_t>(inter + i) * k + c] * xv;
    gate += gp;
    up += up_p;
    gate_mag += std::fabs(gp);
    up_mag += std::fabs(up_p);
  }
  const double tol = rounding * (std::fabs(gate) + 1) * (std::fabs(up) + 1) +
                     1.1e-5 * (gate_mag * (std::fabs(up) + 1) + up_mag * (std::fabs(gate) + 1));
  return {gate / (1.0 + std::exp(-gate)) * up, tol, gate, up};
}

}  // namespace tpserve::worker::cuda::testing

#endif  // TPSERVE_WORKER_CUDA_INT_WEIGHT_TEST_UTIL_H_
