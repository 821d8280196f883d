#include "common/quant/quant_linear.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors/tensor_read.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

using safetensors::DType;
using safetensors::TensorView;

const std::vector<DType> kFloatTypes = {DType::kF16, DType::kBF16, DType::kF32};

std::string Shape(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

std::string Shapes(const std::vector<std::vector<int64_t>>& shapes) {
  std::vector<std::string> parts;
  for (const auto& s : shapes) parts.push_back(Shape(s));
  return absl::StrJoin(parts, " or ");
}

std::string DTypes(const std::vector<DType>& dtypes) {
  std::vector<std::string> parts;
  for (DType d : dtypes) parts.push_back(safetensors::DTypeName(d));
  return absl::StrJoin(parts, "/");
}

absl::Status NotPackable(const QuantConfig& c, const std::string& prefix, int64_t out, int64_t in,
                         const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("layer \"", prefix, "\" [", out, ", ", in,
                                                 "] cannot be stored as ", c.Describe(), ": ", why));
}

}  // namespace

absl::StatusOr<TensorView> GetChecked(const safetensors::Checkpoint& ckpt,
                                      const QuantTensorSpec& spec, const std::string& needed_by) {
  TP_ASSIGN_OR_RETURN(TensorView v, ckpt.Get(spec.name));
  bool shape_ok = false;
  for (const auto& s : spec.shapes) shape_ok |= v.shape == s;
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(v.file, ": tensor \"", spec.name, "\" has shape ",
                                                   v.ShapeString(), "; ", needed_by, " needs ",
                                                   Shapes(spec.shapes)));
  }
  bool dtype_ok = false;
  for (DType d : spec.dtypes) dtype_ok |= v.dtype == d;
  if (!dtype_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        v.file, ": tensor \"", spec.name, "\" has dtype ", safetensors::DTypeName(v.dtype), "; ",
        needed_by, " needs ", DTypes(spec.dtypes)));
  }
  return v;
}

absl::Status CheckFinitePositive(const TensorView& v, const std::vector<float>& values,
                                 bool positive) {
  for (size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(values[k]) || (positive && !(values[k] > 0))) {
      return absl::InvalidArgumentError(absl::StrCat(v.file, ": tensor \"", v.name, "\" element ",
                                                     k, " is ", values[k], "; scales must be ",
                                                     positive ? "finite and > 0" : "finite"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<QuantTensorSpec>> QuantLinearSpecs(const QuantConfig& c,
                                                              const std::string& prefix,
                                                              int64_t out, int64_t in) {
  const std::string p = prefix + ".";
  std::vector<QuantTensorSpec> specs;
  if (c.method == QuantMethod::kFp8) {
    specs.push_back({p + "weight", {{out, in}}, {DType::kF8E4M3}});
    specs.push_back({p + "weight_scale", {{}, {1}, {out}, {out, 1}}, kFloatTypes});
    specs.push_back({p + "input_scale", {{}, {1}}, kFloatTypes, !c.static_activations});
    return specs;
  }
  if (c.method != QuantMethod::kAwq && c.method != QuantMethod::kGptq) {
    return absl::InvalidArgumentError(absl::StrCat("layer \"", prefix, "\": not a quantized config"));
  }
  const int pf = c.pack_factor();
  if (out % pf != 0) return NotPackable(c, prefix, out, in, absl::StrCat("out % ", pf, " != 0"));
  if (c.group_size > 0 && in % c.group_size != 0) {
    return NotPackable(c, prefix, out, in, absl::StrCat("in % group_size ", c.group_size, " != 0"));
  }
  const int64_t groups = c.num_groups(in);
  if (c.method == QuantMethod::kAwq) {
    specs.push_back({p + "qweight", {{in, out / pf}}, {DType::kI32}});
  } else {
    if (in % pf != 0) return NotPackable(c, prefix, out, in, absl::StrCat("in % ", pf, " != 0"));
    specs.push_back({p + "qweight", {{in / pf, out}}, {DType::kI32}});
  }
  specs.push_back({p + "qzeros", {{groups, out / pf}}, {DType::kI32}});
  specs.push_back({p + "scales", {{groups, out}}, kFloatTypes});
  if (c.method == QuantMethod::kGptq) {
    specs.push_back({p + "g_idx", {{in}}, {DType::kI32, DType::kI64}, !c.desc_act});
  }
  return specs;
}

bool IsQuantizedLinear(const QuantConfig& c, const safetensors::Checkpoint& ckpt,
                       const std::string& prefix) {
  switch (c.method) {
    case QuantMethod::kNone: return false;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
      return ckpt.Has(prefix + ".qweight") || !ckpt.Has(prefix + ".weight");
    case QuantMethod::kFp8: {
      if (ckpt.Has(prefix + ".weight_scale")) return true;
      auto w = ckpt.Get(prefix + ".weight");
      return !w.ok() || w->dtype == DType::kF8E4M3;
    }
  }
  return false;
}

absl::StatusOr<QuantizedLinear> QuantizedLinear::Open(const QuantConfig& c,
                                                      const safetensors::Checkpoint& ckpt,
                                                      const std::string& prefix, int64_t out,
                                                      int64_t in) {
  TP_ASSIGN_OR_RETURN(std::vector<QuantTensorSpec> specs, QuantLinearSpecs(c, prefix, out, in));
  std::vector<TensorView> views(specs.size());
  QuantizedLinear q;
  for (size_t k = 0; k < specs.size(); ++k) {
    if (specs[k].optional && !ckpt.Has(specs[k].name)) continue;
    TP_ASSIGN_OR_RETURN(views[k], GetChecked(ckpt, specs[k], c.Describe()));
    q.stored_bytes_ += static_cast<int64_t>(views[k].nbytes);
  }
  q.config_ = c;
  q.prefix_ = prefix;
  q.out_ = out;
  q.in_ = in;
  if (c.method == QuantMethod::kFp8) {
    q.fp8_ = views[0].data;
    TP_ASSIGN_OR_RETURN(q.scales_, safetensors::ReadFloat32(views[1]));
    TP_RETURN_IF_ERROR(CheckFinitePositive(views[1], q.scales_, /*positive=*/true));
    if (views[2].data != nullptr) {
      TP_ASSIGN_OR_RETURN(std::vector<float> input_scale, safetensors::ReadFloat32(views[2]));
      TP_RETURN_IF_ERROR(CheckFinitePositive(views[2], input_scale, /*positive=*/true));
    }
    return q;
  }
  q.packed_.awq = c.method == QuantMethod::kAwq;
  q.packed_.bits = c.bits;
  q.packed_.out = out;
  q.packed_.in = in;
  q.packed_.group_size = c.group_size;
  q.packed_.qweight = views[0].data;
  q.packed_.qzeros = views[1].data;
  q.packed_.zero_offset = c.method == QuantMethod::kGptq ? c.zero_offset : 0;
  TP_ASSIGN_OR_RETURN(q.scales_, safetensors::ReadFloat32(views[2]));
  TP_RETURN_IF_ERROR(CheckFinitePositive(views[2], q.scales_, /*positive=*/false));
  // Without desc_act the groups are i / group_size whatever g_idx says, as
  // in vLLM; with it, g_idx decides and must name existing groups.
  if (c.method == QuantMethod::kGptq && c.desc_act) {
    TP_ASSIGN_OR_RETURN(q.g_idx_, safetensors::ReadInt32(views[3]));
    const int64_t groups = c.num_groups(in);
    for (size_t i = 0; i < q.g_idx_.size(); ++i) {
      if (q.g_idx_[i] < 0 || q.g_idx_[i] >= groups) {
        return absl::InvalidArgumentError(
            absl::StrCat(views[3].file, ": tensor \"", views[3].name, "\" element ", i, " is ",
                         q.g_idx_[i], "; groups are [0, ", groups, ")"));
      }
    }
  }
  return q;
}

absl::StatusOr<std::vector<float>> QuantizedLinear::Dequantize(int64_t out_begin, int64_t out_end,
                                                               int64_t in_begin,
                                                               int64_t in_end) const {
  if (out_begin < 0 || out_end < out_begin || out_end > out_ || in_begin < 0 ||
      in_end < in_begin || in_end > in_) {
    return absl::OutOfRangeError(absl::StrCat("layer \"", prefix_, "\" [", out_, ", ", in_,
                                              "]: slice rows [", out_begin, ", ", out_end,
                                              ") columns [", in_begin, ", ", in_end,
                                              ") out of range"));
  }
  std::vector<float> dst(static_cast<size_t>((out_end - out_begin) * (in_end - in_begin)));
  if (config_.method == QuantMethod::kFp8) {
    DequantizeFp8(fp8_, in_, scales_.data(), scales_.size() > 1 || out_ == 1, out_begin, out_end,
                  in_begin, in_end, dst.data());
    return dst;
  }
  DequantizePacked(packed_int(), out_begin, out_end, in_begin, in_end, dst.data());
  return dst;
}

}  // namespace tpserve
