#include "worker/model/cpu_ops.h"

#include <algorithm>
#include <cmath>

#include "worker/model/cpu_parallel.h"

namespace tpserve::worker::cpu {

namespace {

// The dot product the hot loops inline; eight independent accumulators let
// the compiler use SIMD lanes without reassociating a single sum.
inline __attribute__((always_inline)) float DotInline(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Output rows [n0, n1) of Linear for every token. Compiled twice: for AVX2
// + FMA (Haswell and later) and for baseline x86-64, picked at load time, so
// the binary runs on any x86-64 machine and uses the wide units where they
// exist.
__attribute__((target_clones("arch=haswell", "default"))) void LinearBlock(
    const float* x, int64_t rows, int64_t in, const float* w, const float* bias, int64_t n0,
    int64_t n1, int64_t out, float* y) {
  for (int64_t t = 0; t < rows; ++t) {
    const float* xr = x + t * in;
    float* yr = y + t * out;
    for (int64_t n = n0; n < n1; ++n) {
      yr[n] = DotInline(xr, w + n * in, in) + (bias != nullptr ? bias[n] : 0.0f);
    }
  }
}

}  // namespace

float Dot(const float* a, const float* b, int64_t n) { return DotInline(a, b, n); }

void Linear(const float* x, int64_t rows, int64_t in, const float* w, const float* bias,
            int64_t out, float* y) {
  // Blocks of output rows so a block of w stays in cache across all tokens;
  // blocks are independent, so they run in parallel (about 256k MACs per
  // task at least, below which threading costs more than it saves).
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (out + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, rows * in * kBlock));
  ParallelFor(blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t n0 = b0 * kBlock; n0 < std::min(out, b1 * kBlock); n0 += kBlock) {
      LinearBlock(x, rows, in, w, bias, n0, std::min(out, n0 + kBlock), out, y);
    }
  });
}

void RmsNorm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* y) {
  for (int64_t t = 0; t < rows; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    const float ms = Dot(xr, xr, dim) / static_cast<float>(dim);
    const float scale = 1.0f / std::sqrt(ms + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * scale);
  }
}

void ApplyRope(float* heads, int num_heads, int head_dim, int64_t position, double theta) {
  const int half = head_dim / 2;
  // Frequencies and angles as HF computes them: inv_freq in float32, then
  // position * inv_freq in float32, then cos/sin.
  for (int i = 0; i < half; ++i) {
    const float inv_freq =
        static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim));
    const float angle = static_cast<float>(position) * inv_freq;
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < num_heads; ++h) {
      float* v = heads + static_cast<int64_t>(h) * head_dim;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    x[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void AddInPlace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace tpserve::worker::cpu
