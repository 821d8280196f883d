// A tiny Qwen2 checkpoint for the FP8 KV cache scale tests (CPU and CUDA
// backends): its k and v are 2^10 (layer 0) and 2^13 (layer 1) times larger
// than usual and q_proj / o_proj as much smaller, so the model itself is an
// ordinary one, but at scale 1.0 an E4M3 cache saturates most k/v values at
// 448, and each layer needs its own scales. Test-only.
#ifndef TPSERVE_WORKER_MODEL_TESTING_KV_SCALE_MODEL_H_
#define TPSERVE_WORKER_MODEL_TESTING_KV_SCALE_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "worker/model/testing/backend_driver.h"

namespace tpserve::worker::testing {

inline constexpr int kKvScaleLayers = 2;

// Per-layer k and v scales.
struct KvScales {
  std::vector<float> k, v;
};

// Scales that keep every k/v value of the model inside E4M3's range, with
// a margin of 2x or more: powers of two, different per layer and tensor.
inline const KvScales kFittingKvScales = {{16.0f, 128.0f}, {32.0f, 256.0f}};

// How the checkpoint stores the scales.
enum class KvScaleLayout {
  kNone,     // no scale tensors
  kKAndV,    // k_scale and v_scale
  kKvScale,  // one kv_scale per layer (k's value; v must equal it)
  // No scale tensors: the scales folded into the weights instead (k_proj and
  // v_proj divided by them, q_proj and o_proj multiplied), so that with scale
  // 1.0 the cache holds E4M3(k / k_scale) and attention computes
  // q . (E4M3(k / k_scale) * k_scale): the reference for kKAndV.
  kFolded,
};

// Writes the checkpoint (config.json, model.safetensors, float32) to a fresh
// folder `name` under the test temp folder (::testing::TempDir()) and returns its path.
std::string WriteKvScaleModel(const std::string& name, const KvScales& scales, KvScaleLayout layout);

// Three prompts of 11 to 26 tokens.
const std::vector<std::vector<int32_t>>& KvScalePrompts();

// The largest relative L2 error of `got`'s last-prompt-position logits
// against `ref`'s, over the prompts.
double MaxLogitError(const std::vector<DriveResult>& got, const std::vector<DriveResult>& ref);

}  // namespace tpserve::worker::testing

#endif  // TPSERVE_WORKER_MODEL_TESTING_KV_SCALE_MODEL_H_
