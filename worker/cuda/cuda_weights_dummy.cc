// Dummy weights for benchmarks and tests (MakeDummyWeights, cuda_weights.h):
// uniform bf16 values with HF's initialisation std, or random packed int
// codes, on the device.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/cuda_weights.h"
#include "worker/cuda/cuda_weights_internal.h"
#include "worker/cuda/fill.h"

namespace tpserve::worker::cuda {
namespace {

using bf16 = __nv_bfloat16;
using weights_internal::AllocBf16;
using weights_internal::LayOutForDecode;
using weights_internal::QuantizeLayer;
using weights_internal::UploadVector;

// Random packed codes for a dummy [n, k] int weight in config `q`'s format
// (every bit pattern is a valid code): zero points mid-range and one scale
// that gives the weights about HF's std of 0.02.
absl::Status RandomIntWeight(LinearWeight& lw, int64_t n, int64_t k, const QuantConfig& q, uint64_t seed,
                             int64_t& total) {
  lw.bits = q.bits;
  lw.group = q.group_size > 0 ? q.group_size : 128;
  const int64_t words = n * k * q.bits / 32, groups = n * (k / lw.group);
  TP_ASSIGN_OR_RETURN(lw.data, DeviceBuffer::Allocate(static_cast<size_t>(words) * 4));
  total += words * 4;
  TP_RETURN_IF_ERROR(FillUniformBf16(lw.data.as<bf16>(), static_cast<size_t>(words) * 2, seed, -1.0f, 1.0f, nullptr));
  const float scale = 0.02f * std::sqrt(12.0f) / static_cast<float>(1 << q.bits);
  TP_ASSIGN_OR_RETURN(lw.scale, UploadVector(std::vector<float>(groups, scale), total));
  TP_ASSIGN_OR_RETURN(lw.zero, UploadVector(std::vector<uint16_t>(groups, 1 << (q.bits - 1)), total));
  return LayOutForDecode(lw, n, k);
}

}  // namespace

absl::StatusOr<ModelWeights> MakeDummyWeights(const ModelConfig& c, const Partition& p, uint64_t seed,
                                              WeightQuant quant) {
  const int64_t h = c.hidden_size, d = c.head_dim;
  const int64_t nh = p.num_heads, nkv = p.num_kv_heads, inter = p.intermediate;
  // Uniform(-a, a) has std a / sqrt(3); HF initialises with std 0.02.
  const float a = 0.02f * std::sqrt(3.0f);
  uint64_t tensor = seed * 1000003ull + p.rank * 7919ull;
  ModelWeights w;
  auto random = [&](DeviceBuffer& buf, int64_t elems) -> absl::Status {
    TP_ASSIGN_OR_RETURN(buf, AllocBf16(elems, w.bytes));
    return FillUniformBf16(buf.as<bf16>(), elems, ++tensor, -a, a, nullptr);
  };
  auto ones = [&](DeviceBuffer& buf, int64_t elems) -> absl::Status {
    TP_ASSIGN_OR_RETURN(buf, AllocBf16(elems, w.bytes));
    return FillUniformBf16(buf.as<bf16>(), elems, ++tensor, 1.0f, 1.0f, nullptr);
  };
  TP_RETURN_IF_ERROR(random(w.embed, std::max(1, p.local_vocab) * h));
  TP_RETURN_IF_ERROR(random(w.lm_head, int64_t{p.shard_vocab} * h));
  TP_RETURN_IF_ERROR(ones(w.final_norm, h));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights lw;
    TP_RETURN_IF_ERROR(ones(lw.input_norm, h));
    TP_RETURN_IF_ERROR(ones(lw.post_norm, h));
    TP_RETURN_IF_ERROR(random(lw.qkv_bias, (nh + 2 * nkv) * d));
    if (quant == WeightQuant::kInt) {  // packed from the start: no bf16 copy of the model
      TP_RETURN_IF_ERROR(RandomIntWeight(lw.qkv, (nh + 2 * nkv) * d, h, c.quantization, ++tensor, w.bytes));
      TP_RETURN_IF_ERROR(RandomIntWeight(lw.o_proj, h, nh * d, c.quantization, ++tensor, w.bytes));
      TP_RETURN_IF_ERROR(RandomIntWeight(lw.gate_up, 2 * inter, h, c.quantization, ++tensor, w.bytes));
      TP_RETURN_IF_ERROR(RandomIntWeight(lw.down, h, inter, c.quantization, ++tensor, w.bytes));
    } else {
      TP_RETURN_IF_ERROR(random(lw.qkv.data, (nh + 2 * nkv) * d * h));
      TP_RETURN_IF_ERROR(random(lw.o_proj.data, h * nh * d));
      TP_RETURN_IF_ERROR(random(lw.gate_up.data, 2 * inter * h));
      TP_RETURN_IF_ERROR(random(lw.down.data, h * inter));
    }
    TP_RETURN_IF_ERROR(QuantizeLayer(lw, c, p, quant, w.bytes));
    w.layers.push_back(std::move(lw));
  }
  TP_CUDA_CHECK(cudaDeviceSynchronize());
  return w;
}

}  // namespace tpserve::worker::cuda
