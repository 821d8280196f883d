// The float32 kernels of the CPU backend: plain loops with contiguous inner
// dimensions so the compiler vectorises them. Matrices are row-major.
#ifndef TPSERVE_WORKER_MODEL_CPU_OPS_H_
#define TPSERVE_WORKER_MODEL_CPU_OPS_H_

#include <cstdint>

namespace tpserve::worker::cpu {

// Dot product of two length-n vectors (several accumulators, so it
// vectorises without -ffast-math).
float Dot(const float* a, const float* b, int64_t n);

// y[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n]) for t < rows: a linear layer
// with PyTorch's [out, in] weight layout. `bias` may be null.
void Linear(const float* x, int64_t rows, int64_t in, const float* w, const float* bias,
            int64_t out, float* y);

// Row-wise RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight. y may alias x.
void RmsNorm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* y);

// Rotates `num_heads` heads of `head_dim` in place with neox-style RoPE (the
// first and second halves of each head form the pairs): pair i by angle
// position * inv_freq[i], with cos and sin multiplied by `attention_factor`
// (YaRN's; 1 for plain RoPE). The table comes from MakeRopeTable.
void ApplyRope(float* heads, int num_heads, int head_dim, int64_t position, const float* inv_freq,
               float attention_factor);

// x[i] = silu(gate[i]) * up[i] for n elements (x may alias gate).
void SiluMul(const float* gate, const float* up, int64_t n, float* x);

// y[i] += x[i].
void AddInPlace(float* y, const float* x, int64_t n);

}  // namespace tpserve::worker::cpu

#endif  // TPSERVE_WORKER_MODEL_CPU_OPS_H_
