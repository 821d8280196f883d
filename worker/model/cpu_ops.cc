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

// Eight floats in one SIMD value (GCC vector extension: two SSE registers on
// baseline x86-64, one AVX register in the Haswell clone).
typedef float V8 __attribute__((vector_size(32)));

inline __attribute__((always_inline)) V8 Load8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(v));  // unaligned
  return v;
}

inline __attribute__((always_inline)) float Sum8(V8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// Output rows [n0, n1) of Linear for every token, four outputs at a time so
// each load of x feeds four multiply-adds. Every output is computed with the
// same lane structure whatever its neighbours, so results do not depend on
// blocking or threading. Compiled twice: for Haswell (AVX2) and for baseline
// x86-64, picked at load time, so the binary runs on any x86-64 machine.
__attribute__((target_clones("arch=haswell", "default"))) void LinearBlock(
    const float* x, int64_t rows, int64_t in, const float* w, const float* bias, int64_t n0,
    int64_t n1, int64_t out, float* y) {
  const int64_t in8 = in - in % 8;
  for (int64_t t = 0; t < rows; ++t) {
    const float* xr = x + t * in;
    float* yr = y + t * out;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
      const float* w0 = w + n * in;
      const float* w1 = w0 + in;
      const float* w2 = w1 + in;
      const float* w3 = w2 + in;
      V8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (int64_t k = 0; k < in8; k += 8) {
        const V8 xv = Load8(xr + k);
        a0 += xv * Load8(w0 + k);
        a1 += xv * Load8(w1 + k);
        a2 += xv * Load8(w2 + k);
        a3 += xv * Load8(w3 + k);
      }
      float s0 = Sum8(a0), s1 = Sum8(a1), s2 = Sum8(a2), s3 = Sum8(a3);
      for (int64_t k = in8; k < in; ++k) {
        s0 += xr[k] * w0[k];
        s1 += xr[k] * w1[k];
        s2 += xr[k] * w2[k];
        s3 += xr[k] * w3[k];
      }
      yr[n] = s0 + (bias != nullptr ? bias[n] : 0.0f);
      yr[n + 1] = s1 + (bias != nullptr ? bias[n + 1] : 0.0f);
      yr[n + 2] = s2 + (bias != nullptr ? bias[n + 2] : 0.0f);
      yr[n + 3] = s3 + (bias != nullptr ? bias[n + 3] : 0.0f);
    }
    for (; n < n1; ++n) {
      const float* wn = w + n * in;
      V8 a = {};
      for (int64_t k = 0; k < in8; k += 8) a += Load8(xr + k) * Load8(wn + k);
      float s = Sum8(a);
      for (int64_t k = in8; k < in; ++k) s += xr[k] * wn[k];
      yr[n] = s + (bias != nullptr ? bias[n] : 0.0f);
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

void ApplyRope(float* heads, int num_heads, int head_dim, int64_t position, const float* inv_freq,
               float attention_factor) {
  const int half = head_dim / 2;
  // Angles as HF computes them: position * inv_freq in float32, then cos/sin,
  // then the attention factor.
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];
    const float c = std::cos(angle) * attention_factor, s = std::sin(angle) * attention_factor;
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
