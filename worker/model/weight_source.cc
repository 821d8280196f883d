#include "worker/model/weight_source.h"

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quant/quant_linear.h"
#include "common/safetensors/tensor_read.h"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker {
namespace {

class CheckpointSource : public WeightSource {
 public:
  CheckpointSource(std::unique_ptr<safetensors::Checkpoint> ckpt, const QuantConfig& quant)
      : ckpt_(std::move(ckpt)), quant_(quant) {}

  bool Has(const std::string& name) const override {
    if (ckpt_->Has(name)) return true;
    const std::string prefix = LinearPrefix(name);
    return quant_.method != QuantMethod::kFp8 && !prefix.empty() &&
           ckpt_->Has(prefix + ".qweight");
  }

  absl::StatusOr<std::vector<float>> Rows(const std::string& name,
                                          const std::vector<int64_t>& shape, int64_t begin,
                                          int64_t end) const override {
    if (std::string prefix = QuantizedPrefix(name, shape); !prefix.empty()) {
      auto q = QuantizedLinear::Open(quant_, *ckpt_, prefix, shape[0], shape[1]);
      if (!q.ok()) return q.status();
      return q->Dequantize(begin, end, 0, shape[1]);
    }
    auto view = ckpt_->GetWithShape(name, shape);
    if (!view.ok()) return view.status();
    return safetensors::ReadRowsFloat32(*view, begin, end);
  }

  absl::StatusOr<std::vector<float>> Columns(const std::string& name,
                                             const std::vector<int64_t>& shape, int64_t begin,
                                             int64_t end) const override {
    if (std::string prefix = QuantizedPrefix(name, shape); !prefix.empty()) {
      auto q = QuantizedLinear::Open(quant_, *ckpt_, prefix, shape[0], shape[1]);
      if (!q.ok()) return q.status();
      return q->Dequantize(0, shape[0], begin, end);
    }
    auto view = ckpt_->GetWithShape(name, shape);
    if (!view.ok()) return view.status();
    return safetensors::ReadColumnsFloat32(*view, begin, end);
  }

 private:
  // "a.b.weight" -> "a.b"; empty for other names.
  static std::string LinearPrefix(const std::string& name) {
    constexpr std::string_view kSuffix = ".weight";
    if (!name.ends_with(kSuffix)) return "";
    return name.substr(0, name.size() - kSuffix.size());
  }

  // The layer prefix when `name` is a 2-D weight stored quantized, else "".
  std::string QuantizedPrefix(const std::string& name, const std::vector<int64_t>& shape) const {
    if (!quant_.enabled() || shape.size() != 2) return "";
    std::string prefix = LinearPrefix(name);
    if (prefix.empty() || !IsQuantizedLinear(quant_, *ckpt_, prefix)) return "";
    return prefix;
  }

  std::unique_ptr<safetensors::Checkpoint> ckpt_;
  const QuantConfig quant_;
};

class DummySource : public WeightSource {
 public:
  explicit DummySource(uint64_t seed) : seed_(seed) {}

  bool Has(const std::string&) const override { return true; }

  absl::StatusOr<std::vector<float>> Rows(const std::string& name,
                                          const std::vector<int64_t>& shape, int64_t begin,
                                          int64_t end) const override {
    const int64_t rows = shape.empty() ? 1 : shape[0];
    const int64_t cols = shape.size() >= 2 ? shape[1] : 1;
    if (begin < 0 || end < begin || end > rows) return RangeError(name, shape, begin, end);
    std::vector<float> out(static_cast<size_t>((end - begin) * cols));
    const Generator gen(seed_, name);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t c = 0; c < cols; ++c) out[(r - begin) * cols + c] = gen(r * cols + c);
    }
    return out;
  }

  absl::StatusOr<std::vector<float>> Columns(const std::string& name,
                                             const std::vector<int64_t>& shape, int64_t begin,
                                             int64_t end) const override {
    if (shape.size() != 2 || begin < 0 || end < begin || end > shape[1]) {
      return RangeError(name, shape, begin, end);
    }
    const int64_t width = end - begin;
    std::vector<float> out(static_cast<size_t>(shape[0] * width));
    const Generator gen(seed_, name);
    for (int64_t r = 0; r < shape[0]; ++r) {
      for (int64_t c = begin; c < end; ++c) out[r * width + c - begin] = gen(r * shape[1] + c);
    }
    return out;
  }

 private:
  static absl::Status RangeError(const std::string& name, const std::vector<int64_t>& shape,
                                 int64_t begin, int64_t end) {
    return absl::OutOfRangeError(absl::StrCat("dummy tensor \"", name, "\" [",
                                              absl::StrJoin(shape, ", "), "]: slice [", begin,
                                              ", ", end, ") out of range"));
  }

  // The value of element `index` of one tensor (the name is hashed once).
  class Generator {
   public:
    Generator(uint64_t seed, const std::string& name) : norm_(name.ends_with("norm.weight")) {
      uint64_t h = 1469598103934665603ull;  // FNV-1a of the name
      for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
      key_ = seed ^ h;
    }
    float operator()(int64_t index) const {
      if (norm_) return 1.0f;
      return static_cast<float>(SampleUniform(key_, static_cast<uint64_t>(index)) * 0.1 - 0.05);
    }

   private:
    bool norm_;
    uint64_t key_ = 0;
  };

  const uint64_t seed_;
};

}  // namespace

std::unique_ptr<WeightSource> MakeCheckpointSource(
    std::unique_ptr<safetensors::Checkpoint> checkpoint, const QuantConfig& quantization) {
  return std::make_unique<CheckpointSource>(std::move(checkpoint), quantization);
}

std::unique_ptr<WeightSource> MakeDummySource(uint64_t seed) {
  return std::make_unique<DummySource>(seed);
}

}  // namespace tpserve::worker
