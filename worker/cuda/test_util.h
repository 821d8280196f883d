// Helpers for the kernel tests: device detection, random bf16 data, and
// device arrays that start poisoned (NaN bytes) so a kernel that skips an
// output element fails the comparison.
#ifndef TPSERVE_WORKER_CUDA_TEST_UTIL_H_
#define TPSERVE_WORKER_CUDA_TEST_UTIL_H_

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker::cuda::testing {

// True when a CUDA device is usable.
inline bool HasCudaDevice() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define TP_SKIP_WITHOUT_GPU() \
  if (!::tpserve::worker::cuda::testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device"

// bf16 round trip of a float (what the device sees).
inline float RoundBf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

// `n` bf16 values uniform in [-scale, scale].
inline std::vector<__nv_bfloat16> RandomBf16(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<__nv_bfloat16> v(n);
  for (auto& x : v) x = __float2bfloat16(d(rng));
  return v;
}

// Floats of a bf16 vector.
inline std::vector<float> ToFloat(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = __bfloat162float(v[i]);
  return f;
}

// A device copy of a host vector, or a poisoned device array.
template <typename T>
class DevArray {
 public:
  explicit DevArray(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemset(p_, 0xFF, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
  }
  explicit DevArray(const std::vector<T>& h) : DevArray(h.size()) {
    EXPECT_EQ(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DevArray() { cudaFree(p_); }
  DevArray(const DevArray&) = delete;
  DevArray& operator=(const DevArray&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  std::vector<T> Download() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// Max |a-b| / max(max|b|, floor): the relative error measure the goldens use.
inline double MaxRelError(const std::vector<float>& got, const std::vector<float>& want,
                          double floor = 1e-6) {
  double max_diff = 0, max_ref = floor;
  for (size_t i = 0; i < want.size(); ++i) {
    double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(d <= max_diff)) max_diff = std::isnan(d) ? INFINITY : d;
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
  }
  return max_diff / max_ref;
}

// Host reference of QuantizeRowsFp8: per row, scale = max|x| / 448 (1 when
// zero) and q = E4M3(x * (1 / scale)), round to nearest, saturated.
struct Fp8Rows {
  std::vector<__nv_fp8_e4m3> q;
  std::vector<float> scale;
  // The value row r, column c stands for.
  float Dequant(int r, int c, int k) const {
    return static_cast<float>(q[static_cast<size_t>(r) * k + c]) * scale[r];
  }
};
inline Fp8Rows QuantizeFp8Reference(const std::vector<__nv_bfloat16>& x, int rows, int k) {
  Fp8Rows out;
  out.q.resize(x.size());
  out.scale.resize(rows);
  for (int r = 0; r < rows; ++r) {
    float amax = 0.0f;
    for (int c = 0; c < k; ++c) amax = std::max(amax, std::fabs(__bfloat162float(x[static_cast<size_t>(r) * k + c])));
    const float s = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / s;
    out.scale[r] = s;
    for (int c = 0; c < k; ++c) {
      const size_t i = static_cast<size_t>(r) * k + c;
      out.q[i] = __nv_fp8_e4m3(__bfloat162float(x[i]) * inv);
    }
  }
  return out;
}

}  // namespace tpserve::worker::cuda::testing

#endif  // TPSERVE_WORKER_CUDA_TEST_UTIL_H_
