// The random number behind every sampled token. It is a pure function of the
// request's seed and the index of the output token being sampled, so a
// sequence draws the same numbers whatever batch it runs in, after a
// preemption, and on CPU or GPU (the header compiles under nvcc too).
//
// Sampling rule shared by all backends: after penalties, temperature and the
// top-k / top-p / min-p filters, order the surviving tokens by probability
// (descending, ties by lower id) and pick the first token whose cumulative
// probability exceeds u * total, where u = SampleUniform(seed, output_index).
#ifndef TPSERVE_WORKER_MODEL_SAMPLING_RNG_H_
#define TPSERVE_WORKER_MODEL_SAMPLING_RNG_H_

#include <cstdint>

#if defined(__CUDACC__)
#define TP_HOST_DEVICE __host__ __device__
#else
#define TP_HOST_DEVICE
#endif

namespace tpserve::worker {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
TP_HOST_DEVICE inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform double in [0, 1) for output token `output_index` (0 for the first
// generated token) of a request seeded with `seed`.
TP_HOST_DEVICE inline double SampleUniform(uint64_t seed, uint64_t output_index) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (output_index * 0xD1B54A32D192ED03ull));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_SAMPLING_RNG_H_
