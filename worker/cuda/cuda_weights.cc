#include "worker/cuda/cuda_weights.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model/model_tensors.h"
#include "common/model/tensor_parallel.h"
#include "common/quant/kv_scales.h"
#include "common/quant/quant_linear.h"
#include "common/quant/tp_partition.h"
#include "common/safetensors/checkpoint.h"
#include "common/safetensors/tensor_read.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/cuda_weights_internal.h"
#include "worker/cuda/fp8_quant.h"
#include "worker/cuda/int_repack.h"

namespace tpserve::worker::cuda {
namespace {

using weights_internal::AllocBf16;
using weights_internal::LayOutForDecode;
using weights_internal::QuantizeLayer;
using weights_internal::UploadVector;

namespace st = ::tpserve::safetensors;
using bf16 = __nv_bfloat16;

// Copies raw tensor bytes (any float dtype) to `dst` as bf16.
absl::Status Upload(const st::TensorView& t, const uint8_t* data, size_t elems, bf16* dst) {
  if (t.dtype == st::DType::kBF16) {
    TP_CUDA_CHECK(cudaMemcpy(dst, data, elems * 2, cudaMemcpyHostToDevice));
    return absl::OkStatus();
  }
  if (!st::IsFloat(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(t.file, ": tensor ", t.name, " has dtype ",
                                                   st::DTypeName(t.dtype), ", not a float type"));
  }
  std::vector<float> f(elems);
  st::ConvertToFloat32(t.dtype, data, elems, f.data());
  std::vector<uint16_t> b(elems);
  for (size_t i = 0; i < elems; ++i) b[i] = st::FloatToBf16(f[i]);
  TP_CUDA_CHECK(cudaMemcpy(dst, b.data(), elems * 2, cudaMemcpyHostToDevice));
  return absl::OkStatus();
}

// Rows [begin, end) of a tensor to dst.
absl::Status UploadRows(const st::TensorView& t, int64_t begin, int64_t end, bf16* dst) {
  TP_ASSIGN_OR_RETURN(st::TensorView s, st::SliceRows(t, begin, end));
  return Upload(t, s.data, static_cast<size_t>(s.numel()), dst);
}

// Columns [begin, end) of a 2-D tensor to dst (row-major [rows, end-begin]).
absl::Status UploadColumns(const st::TensorView& t, int64_t begin, int64_t end, bf16* dst) {
  if (begin == 0 && end == t.shape[1]) return Upload(t, t.data, static_cast<size_t>(t.numel()), dst);
  TP_ASSIGN_OR_RETURN(std::vector<uint8_t> raw, st::CopyColumnsRaw(t, begin, end));
  return Upload(t, raw.data(), static_cast<size_t>(t.shape[0] * (end - begin)), dst);
}

// Replaces a bf16 [rows, k] weight by its FP8 rows and scales.
absl::Status QuantizeFp8(LinearWeight& lw, int64_t rows, int64_t k, int64_t& total) {
  TP_ASSIGN_OR_RETURN(DeviceBuffer q, DeviceBuffer::Allocate(static_cast<size_t>(rows * k)));
  TP_ASSIGN_OR_RETURN(DeviceBuffer scale, DeviceBuffer::Allocate(static_cast<size_t>(rows) * sizeof(float)));
  TP_RETURN_IF_ERROR(QuantizeRowsFp8(lw.data.as<bf16>(), static_cast<int>(rows), static_cast<int>(k),
                                     q.as<__nv_fp8_e4m3>(), scale.as<float>(), nullptr));
  TP_CUDA_CHECK(cudaDeviceSynchronize());
  total += rows * k + rows * static_cast<int64_t>(sizeof(float)) - rows * k * 2;
  lw.data = std::move(q);
  lw.scale = std::move(scale);
  return absl::OkStatus();
}

// A rectangle of a checkpoint's linear layer W[out, in]: rows [begin, end)
// with every column, or with `columns` every row and columns [begin, end);
// followed by `pad` zero rows (or columns): the group padding of a
// quantized intermediate dimension (common/quant/tp_partition.h).
struct Piece {
  std::string prefix;  // e.g. "model.layers.0.mlp.down_proj"
  int64_t begin = 0, end = 0;
  bool columns = false;
  int64_t pad = 0;
};

// The linear weights of a checkpoint, plain or quantized (AWQ, GPTQ, FP8:
// common/quant), assembled from pieces into one rank's LinearWeight.
// Quantized layers are dequantized exactly in float32 and rounded to bf16
// once; with WeightQuant::kFp8 a bf16 result is then quantized to FP8 rows
// on the device, while an FP8 checkpoint's own codes and scales are copied
// as they are (re-quantizing them per row would round them a second time).
class LinearReader {
 public:
  LinearReader(const st::Checkpoint& ckpt, const ModelConfig& c, const std::map<std::string, std::vector<int64_t>>& shapes)
      : ckpt_(ckpt), c_(c), shapes_(shapes) {}

  // The pieces stacked row-wise into `lw` ([rows, k]) in `quant`'s format.
  // With kInt, a layer the int kernels cannot stream (an act-order slice
  // of partial groups, groups not a multiple of 32, fused pieces of
  // different act orders, a layer the checkpoint left in float) is
  // dequantized to bf16 instead, with a warning.
  absl::Status Fill(LinearWeight& lw, int64_t k, const std::vector<Piece>& pieces, WeightQuant quant,
                    int64_t& total) const {
    if (quant == WeightQuant::kInt) {
      const absl::Status s = FillInt(lw, k, pieces, total);
      if (!absl::IsFailedPrecondition(s)) return s;
      spdlog::warn("{}: kept in bfloat16, not packed: {}", pieces[0].prefix, std::string(s.message()));
      quant = WeightQuant::kNone;
    }
    int64_t rows = 0;
    std::vector<int64_t> piece_rows;
    bool stored_fp8 = c_.quantization.method == QuantMethod::kFp8;
    for (const Piece& p : pieces) {
      TP_ASSIGN_OR_RETURN(auto shape, Shape(p.prefix));
      piece_rows.push_back(p.columns ? shape.first : p.end - p.begin + p.pad);
      rows += piece_rows.back();
      stored_fp8 = stored_fp8 && IsQuantizedLinear(c_.quantization, ckpt_, p.prefix);
    }
    if (quant == WeightQuant::kFp8 && stored_fp8) return CopyFp8(lw, rows, k, pieces, total);
    TP_ASSIGN_OR_RETURN(lw.data, AllocBf16(rows * k, total));
    int64_t row = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Piece& p = pieces[i];
      bf16* dst = lw.data.as<bf16>() + row * k;
      if (p.pad > 0) TP_CUDA_CHECK(cudaMemset(dst, 0, piece_rows[i] * k * 2));  // the padding's zeros
      if (p.columns && p.pad > 0) {  // [rows, real] read, then placed at pitch k
        const int64_t real = p.end - p.begin;
        TP_ASSIGN_OR_RETURN(DeviceBuffer tmp, DeviceBuffer::Allocate(static_cast<size_t>(piece_rows[i] * real * 2)));
        TP_RETURN_IF_ERROR(Read(p.prefix, p.begin, p.end, true, tmp.as<bf16>()));
        TP_CUDA_CHECK(
            cudaMemcpy2D(dst, k * 2, tmp.data(), real * 2, real * 2, piece_rows[i], cudaMemcpyDeviceToDevice));
      } else {
        TP_RETURN_IF_ERROR(Read(p.prefix, p.begin, p.end, p.columns, dst));
      }
      row += piece_rows[i];
    }
    return quant == WeightQuant::kFp8 ? QuantizeFp8(lw, rows, k, total) : absl::OkStatus();
  }

 private:
  absl::StatusOr<std::pair<int64_t, int64_t>> Shape(const std::string& prefix) const {
    auto it = shapes_.find(prefix + ".weight");
    if (it == shapes_.end()) return absl::InternalError("no expected shape for " + prefix + ".weight");
    return std::make_pair(it->second[0], it->second[1]);
  }

  // The checkpoint's E4M3 codes of each piece and each row's scale.
  absl::Status CopyFp8(LinearWeight& lw, int64_t rows, int64_t k, const std::vector<Piece>& pieces,
                       int64_t& total) const {
    std::vector<uint8_t> codes(static_cast<size_t>(rows * k));
    std::vector<float> scales(static_cast<size_t>(rows));
    int64_t row = 0;
    for (const Piece& p : pieces) {
      TP_ASSIGN_OR_RETURN(auto shape, Shape(p.prefix));
      const auto [out, in] = shape;
      TP_ASSIGN_OR_RETURN(QuantizedLinear q, QuantizedLinear::Open(c_.quantization, ckpt_, p.prefix, out, in));
      const int64_t r0 = p.columns ? 0 : p.begin, r1 = p.columns ? out : p.end;
      const int64_t c0 = p.columns ? p.begin : 0;
      for (int64_t r = r0; r < r1; ++r, ++row) {
        std::memcpy(&codes[row * k], q.fp8_codes() + r * in + c0, static_cast<size_t>(k));
        scales[row] = q.fp8_row_scale(r);
      }
    }
    TP_ASSIGN_OR_RETURN(lw.data, DeviceBuffer::Allocate(codes.size()));
    TP_ASSIGN_OR_RETURN(lw.scale, DeviceBuffer::Allocate(scales.size() * sizeof(float)));
    TP_CUDA_CHECK(cudaMemcpy(lw.data.data(), codes.data(), codes.size(), cudaMemcpyHostToDevice));
    TP_CUDA_CHECK(cudaMemcpy(lw.scale.data(), scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice));
    total += rows * k + rows * static_cast<int64_t>(sizeof(float));
    return absl::OkStatus();
  }

  // The pieces repacked into the int kernels' layout (int_repack.h);
  // FAILED_PRECONDITION when they cannot be.
  absl::Status FillInt(LinearWeight& lw, int64_t k, const std::vector<Piece>& pieces, int64_t& total) const {
    IntRepacked all;
    for (const Piece& p : pieces) {
      if (!IsQuantizedLinear(c_.quantization, ckpt_, p.prefix)) {
        return absl::FailedPreconditionError("the checkpoint stores it unquantized");
      }
      TP_ASSIGN_OR_RETURN(auto shape, Shape(p.prefix));
      const auto [out, in] = shape;
      TP_ASSIGN_OR_RETURN(QuantizedLinear q, QuantizedLinear::Open(c_.quantization, ckpt_, p.prefix, out, in));
      absl::StatusOr<IntRepacked> r = p.columns ? RepackInt(q.packed_int(), 0, out, p.begin, p.end, p.pad)
                                                : RepackInt(q.packed_int(), p.begin, p.end, 0, in);
      if (!r.ok()) return r.status();
      if (!p.columns && p.pad > 0) AppendZeroRows(*r, p.pad);
      TP_RETURN_IF_ERROR(AppendRows(all, *r));
    }
    if (all.k != k) {
      return absl::InternalError(absl::StrCat(pieces[0].prefix, ": repacked ", all.k, " inputs, not ", k));
    }
    TP_ASSIGN_OR_RETURN(lw.data, UploadVector(all.codes, total));
    TP_ASSIGN_OR_RETURN(lw.scale, UploadVector(all.scale, total));
    TP_ASSIGN_OR_RETURN(lw.zero, UploadVector(all.zero, total));
    if (!all.perm.empty()) {
      TP_ASSIGN_OR_RETURN(lw.perm, UploadVector(all.perm, total));
    }
    lw.bits = all.bits;
    lw.group = all.group;
    return LayOutForDecode(lw, all.n, k);
  }

  // Rows (or columns) [begin, end) of `prefix` to dst as bf16.
  absl::Status Read(const std::string& prefix, int64_t begin, int64_t end, bool columns, bf16* dst) const {
    TP_ASSIGN_OR_RETURN(auto shape, Shape(prefix));
    const auto [out, in] = shape;
    if (!c_.quantization.enabled() || !IsQuantizedLinear(c_.quantization, ckpt_, prefix)) {
      TP_ASSIGN_OR_RETURN(auto t, ckpt_.GetWithShape(prefix + ".weight", {out, in}));
      return columns ? UploadColumns(t, begin, end, dst) : UploadRows(t, begin, end, dst);
    }
    TP_ASSIGN_OR_RETURN(QuantizedLinear q, QuantizedLinear::Open(c_.quantization, ckpt_, prefix, out, in));
    TP_ASSIGN_OR_RETURN(std::vector<float> f,
                        columns ? q.Dequantize(0, out, begin, end) : q.Dequantize(begin, end, 0, in));
    std::vector<uint16_t> b(f.size());
    for (size_t i = 0; i < f.size(); ++i) b[i] = st::FloatToBf16(f[i]);
    TP_CUDA_CHECK(cudaMemcpy(dst, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
    return absl::OkStatus();
  }

  const st::Checkpoint& ckpt_;
  const ModelConfig& c_;
  const std::map<std::string, std::vector<int64_t>>& shapes_;
};

}  // namespace

namespace weights_internal {

absl::StatusOr<DeviceBuffer> AllocBf16(int64_t elems, int64_t& total) {
  total += elems * 2;
  return DeviceBuffer::Allocate(static_cast<size_t>(elems) * 2);
}

absl::Status LayOutForDecode(LinearWeight& lw, int64_t n, int64_t k) {
  if (!IntTilesPay(lw.int_view(), static_cast<int>(n), static_cast<int>(k))) return absl::OkStatus();
  TP_ASSIGN_OR_RETURN(DeviceBuffer tiled, DeviceBuffer::Allocate(lw.data.bytes()));
  TP_RETURN_IF_ERROR(TileIntCodes(lw.int_view(), static_cast<int>(n), static_cast<int>(k), tiled.as<uint32_t>(), 0));
  TP_CUDA_CHECK(cudaStreamSynchronize(0));
  lw.data = std::move(tiled);
  lw.tiled = true;
  return absl::OkStatus();
}

absl::Status QuantizeLayer(LayerWeights& lw, const ModelConfig& c, const Partition& p, WeightQuant quant,
                           int64_t& total) {
  if (quant != WeightQuant::kFp8) return absl::OkStatus();
  const int64_t h = c.hidden_size, d = c.head_dim, inter = p.intermediate;
  TP_RETURN_IF_ERROR(QuantizeFp8(lw.qkv, (p.num_heads + 2 * int64_t{p.num_kv_heads}) * d, h, total));
  TP_RETURN_IF_ERROR(QuantizeFp8(lw.o_proj, h, p.num_heads * d, total));
  TP_RETURN_IF_ERROR(QuantizeFp8(lw.gate_up, 2 * inter, h, total));
  return QuantizeFp8(lw.down, h, inter, total);
}

}  // namespace weights_internal

absl::StatusOr<Partition> MakePartition(const ModelConfig& c, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("bad rank ", rank, " of world size ", world));
  }
  TP_RETURN_IF_ERROR(CheckTensorParallel(c, world));
  // The head and MLP split every backend shares; only the quantized MLP
  // padding and the padded vocabulary below are the CUDA backend's own.
  const HeadSplit split = SplitHeads(c, rank, world);
  Partition p;
  p.rank = rank;
  p.world_size = world;
  p.num_heads = split.num_heads;
  p.first_head = split.first_head;
  p.num_kv_heads = split.num_kv_heads;
  p.first_kv_head = split.first_kv_head;
  p.intermediate = split.intermediate;
  p.intermediate_begin = rank * p.intermediate;
  p.intermediate_real = p.intermediate;
  if (c.quantization.method == QuantMethod::kAwq || c.quantization.method == QuantMethod::kGptq) {
    // Whole groups per rank: down_proj's scale groups run along this
    // dimension (72B: 29,568 -> 29,696 at TP 2/4/8).
    TP_ASSIGN_OR_RETURN(const GroupAlignedPartition gp,
                        PartitionGroupAligned(c.intermediate_size, IntermediateAlignment(c.quantization), world));
    TP_ASSIGN_OR_RETURN(const RankSlice slice, SliceForRank(gp, rank));
    p.intermediate = static_cast<int>(gp.per_rank);
    p.intermediate_begin = static_cast<int>(slice.begin);
    p.intermediate_real = static_cast<int>(slice.num_real());
  }
  p.shard_vocab = (c.vocab_size + world - 1) / world;
  p.vocab_start = rank * p.shard_vocab;
  p.local_vocab = std::max(0, std::min(c.vocab_size - p.vocab_start, p.shard_vocab));
  return p;
}

absl::StatusOr<ModelWeights> LoadSafetensorsWeights(const std::string& dir, const ModelConfig& c,
                                                    const Partition& p, WeightQuant quant, KvCacheDtype kv_cache) {
  TP_ASSIGN_OR_RETURN(auto ckpt, st::Checkpoint::Open(dir));
  TP_ASSIGN_OR_RETURN(const KvCacheScales kv_scales, LoadKvCacheScales(*ckpt, c.num_hidden_layers,
                                                                        kv_cache == KvCacheDtype::kFp8E4m3));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ExpectedTensor& e : ExpectedTensors(c)) shapes[e.name] = e.shape;
  auto get = [&](const std::string& name) { return ckpt->GetWithShape(name, shapes[name]); };
  const LinearReader linear(*ckpt, c, shapes);
  const int64_t h = c.hidden_size, d = c.head_dim;
  const int64_t nh = p.num_heads, nkv = p.num_kv_heads, inter = p.intermediate;
  ModelWeights w;
  TP_ASSIGN_OR_RETURN(auto embed, get("model.embed_tokens.weight"));
  TP_ASSIGN_OR_RETURN(w.embed, AllocBf16(std::max(1, p.local_vocab) * h, w.bytes));
  TP_RETURN_IF_ERROR(UploadRows(embed, p.vocab_start, p.vocab_start + p.local_vocab, w.embed.as<bf16>()));
  const bool tied = c.tie_word_embeddings && !ckpt->Has("lm_head.weight");
  TP_ASSIGN_OR_RETURN(auto head, tied ? get("model.embed_tokens.weight") : get("lm_head.weight"));
  TP_ASSIGN_OR_RETURN(w.lm_head, AllocBf16(p.shard_vocab * h, w.bytes));
  TP_CUDA_CHECK(cudaMemset(w.lm_head.data(), 0, w.lm_head.bytes()));
  TP_RETURN_IF_ERROR(UploadRows(head, p.vocab_start, p.vocab_start + p.local_vocab, w.lm_head.as<bf16>()));
  TP_ASSIGN_OR_RETURN(auto norm, get("model.norm.weight"));
  TP_ASSIGN_OR_RETURN(w.final_norm, AllocBf16(h, w.bytes));
  TP_RETURN_IF_ERROR(Upload(norm, norm.data, h, w.final_norm.as<bf16>()));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [&](const char* s) { return LayerTensorName(l, s); };
    LayerWeights lw;
    lw.k_scale = kv_scales.k[l];
    lw.v_scale = kv_scales.v[l];
    TP_ASSIGN_OR_RETURN(auto ln1, get(name("input_layernorm.weight")));
    TP_ASSIGN_OR_RETURN(auto ln2, get(name("post_attention_layernorm.weight")));
    TP_ASSIGN_OR_RETURN(lw.input_norm, AllocBf16(h, w.bytes));
    TP_ASSIGN_OR_RETURN(lw.post_norm, AllocBf16(h, w.bytes));
    TP_RETURN_IF_ERROR(Upload(ln1, ln1.data, h, lw.input_norm.as<bf16>()));
    TP_RETURN_IF_ERROR(Upload(ln2, ln2.data, h, lw.post_norm.as<bf16>()));
    // The q/k/v biases of this rank.
    const int64_t qkv_rows = (nh + 2 * nkv) * d;
    TP_ASSIGN_OR_RETURN(lw.qkv_bias, AllocBf16(qkv_rows, w.bytes));
    const int64_t starts[3] = {p.first_head * d, p.first_kv_head * d, p.first_kv_head * d};
    const int64_t counts[3] = {nh * d, nkv * d, nkv * d};
    const char* projs[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    std::vector<Piece> qkv;
    int64_t row = 0;
    for (int i = 0; i < 3; ++i) {
      qkv.push_back({name(projs[i]), starts[i], starts[i] + counts[i]});
      if (c.attention_bias) {
        TP_ASSIGN_OR_RETURN(auto bt, get(name((std::string(projs[i]) + ".bias").c_str())));
        TP_RETURN_IF_ERROR(UploadRows(bt, starts[i], starts[i] + counts[i], lw.qkv_bias.as<bf16>() + row));
      } else {
        TP_CUDA_CHECK(cudaMemset(lw.qkv_bias.as<bf16>() + row, 0, counts[i] * 2));
      }
      row += counts[i];
    }
    // Fused [q | k | v] and [gate | up] rows of this rank; o_proj and
    // down_proj split by input columns.
    // The intermediate slice: real checkpoint rows, then zero padding.
    const int64_t i0 = p.intermediate_begin, i1 = i0 + p.intermediate_real, pad = inter - p.intermediate_real;
    TP_RETURN_IF_ERROR(linear.Fill(lw.qkv, h, qkv, quant, w.bytes));
    TP_RETURN_IF_ERROR(linear.Fill(lw.o_proj, nh * d,
                                   {{name("self_attn.o_proj"), p.first_head * d, (p.first_head + nh) * d, true}},
                                   quant, w.bytes));
    TP_RETURN_IF_ERROR(linear.Fill(lw.gate_up, h,
                                   {{name("mlp.gate_proj"), i0, i1, false, pad},
                                    {name("mlp.up_proj"), i0, i1, false, pad}},
                                   quant, w.bytes));
    TP_RETURN_IF_ERROR(linear.Fill(lw.down, inter, {{name("mlp.down_proj"), i0, i1, true, pad}}, quant, w.bytes));
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace tpserve::worker::cuda
