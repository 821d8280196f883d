#include "common/quant/kv_scales.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model/model_tensors.h"
#include "common/safetensors/tensor_read.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

using safetensors::DType;

constexpr char kNeededBy[] = "an FP8 KV cache scale (one per layer and tensor)";

// "k scales of 3/4 layers, in [lo, hi]": the range of what the cache uses,
// so the 1.0 of a layer without a scale counts.
std::string DescribeOne(const char* what, const std::vector<float>& scales, int found) {
  if (found == 0) return absl::StrCat(what, " scales: none (1.0)");
  const auto [lo, hi] = std::minmax_element(scales.begin(), scales.end());
  return absl::StrCat(what, " scales of ", found, "/", scales.size(), " layers, in [", *lo, ", ", *hi, "]");
}

}  // namespace

std::vector<QuantTensorSpec> KvScaleSpecs(int layer) {
  std::vector<QuantTensorSpec> specs;
  for (const char* suffix : {"self_attn.k_scale", "self_attn.v_scale", "self_attn.kv_scale"}) {
    specs.push_back({LayerTensorName(layer, suffix), {{}, {1}}, {DType::kF32, DType::kBF16, DType::kF16},
                     /*optional=*/true});
  }
  return specs;
}

absl::StatusOr<float> ReadKvScale(const safetensors::Checkpoint& ckpt, const QuantTensorSpec& spec) {
  TP_ASSIGN_OR_RETURN(safetensors::TensorView view, GetChecked(ckpt, spec, kNeededBy));
  TP_ASSIGN_OR_RETURN(std::vector<float> v, safetensors::ReadFloat32(view));
  TP_RETURN_IF_ERROR(CheckFinitePositive(view, v, /*positive=*/true));
  return v[0];
}

KvCacheScales KvCacheScales::Unit(int num_layers) {
  KvCacheScales s;
  s.k.assign(num_layers, 1.0f);
  s.v.assign(num_layers, 1.0f);
  return s;
}

std::string KvCacheScales::Describe() const {
  if (tensors == 0) return "none (scale 1.0)";
  return absl::StrCat(DescribeOne("k", k, k_found), ", ", DescribeOne("v", v, v_found));
}

absl::StatusOr<KvCacheScales> ReadKvCacheScales(const safetensors::Checkpoint& ckpt, int num_layers) {
  KvCacheScales s = KvCacheScales::Unit(num_layers);
  for (int l = 0; l < num_layers; ++l) {
    // k_scale, v_scale, kv_scale: each checked when present.
    float value[3] = {0, 0, 0};
    bool has[3] = {false, false, false};
    const std::vector<QuantTensorSpec> specs = KvScaleSpecs(l);
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!ckpt.Has(specs[i].name)) continue;
      TP_ASSIGN_OR_RETURN(value[i], ReadKvScale(ckpt, specs[i]));
      has[i] = true;
      ++s.tensors;
    }
    if (has[0] || has[2]) {
      s.k[l] = has[0] ? value[0] : value[2];
      ++s.k_found;
    }
    if (has[1] || has[2]) {
      s.v[l] = has[1] ? value[1] : value[2];
      ++s.v_found;
    }
  }
  return s;
}

absl::StatusOr<KvCacheScales> LoadKvCacheScales(const safetensors::Checkpoint& ckpt, int num_layers,
                                                bool fp8_cache) {
  if (!fp8_cache) {
    int present = 0;
    for (int l = 0; l < num_layers; ++l) {
      for (const QuantTensorSpec& spec : KvScaleSpecs(l)) present += ckpt.Has(spec.name);
    }
    if (present > 0) {
      spdlog::info("the checkpoint's {} KV cache scale tensors (k_scale/v_scale/kv_scale) are not used: the KV "
                   "cache is not FP8 (--kv-cache-dtype fp8 uses them)",
                   present);
    }
    return KvCacheScales::Unit(num_layers);
  }
  TP_ASSIGN_OR_RETURN(KvCacheScales s, ReadKvCacheScales(ckpt, num_layers));
  spdlog::info("FP8 KV cache scales from the checkpoint: {}", s.Describe());
  return s;
}

}  // namespace tpserve
