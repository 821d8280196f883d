#include "worker/cuda/int_repack.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace tpserve::worker::cuda {
namespace {

// The canonical group of a per-channel slice: every input shares the
// row's one scale, so any size dividing the slice and its padding will do;
// larger groups store fewer scales.
int PerChannelGroup(int64_t k_real, int64_t pad) {
  for (int g = 1024; g >= 32; g /= 2) {
    if (k_real % g == 0 && pad % g == 0) return g;
  }
  return 0;
}

}  // namespace

absl::StatusOr<IntRepacked> RepackInt(const PackedIntWeight& w, int64_t out_begin, int64_t out_end,
                                      int64_t in_begin, int64_t in_end, int64_t pad_inputs) {
  const int64_t k_real = in_end - in_begin, k = k_real + pad_inputs;
  if (w.bits != 4 && w.bits != 8) return absl::FailedPreconditionError(absl::StrCat(w.bits, "-bit codes"));
  if (out_begin < 0 || out_end <= out_begin || out_end > w.out || in_begin < 0 || in_end <= in_begin ||
      in_end > w.in || pad_inputs < 0) {
    return absl::OutOfRangeError(absl::StrCat("repack of rows [", out_begin, ", ", out_end, ") inputs [",
                                              in_begin, ", ", in_end, ") of [", w.out, ", ", w.in, "]"));
  }
  const int group = w.group_size > 0 ? w.group_size : PerChannelGroup(k_real, pad_inputs);
  if (group <= 0 || group % 32 != 0 || k_real % group != 0 || pad_inputs % group != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "group size ", w.group_size > 0 ? w.group_size : group, " with ", k_real, " inputs (+", pad_inputs,
        " padding): the int kernels need groups of a multiple of 32 inputs dividing the slice"));
  }
  // Inputs ordered by group; each run of `group` canonical inputs must then
  // come from one checkpoint group.
  std::vector<int32_t> order(static_cast<size_t>(k_real));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return PackedGroup(w, in_begin + a) < PackedGroup(w, in_begin + b);
  });
  const int64_t groups = k / group, real_groups = k_real / group;
  std::vector<int64_t> source(static_cast<size_t>(real_groups), -1);
  for (int64_t j = 0; j < k_real; ++j) {
    const int64_t g = PackedGroup(w, in_begin + order[j]);
    int64_t& s = source[j / group];
    if (s < 0) s = g;
    if (s != g) {
      return absl::FailedPreconditionError(absl::StrCat(
          "inputs [", in_begin, ", ", in_end, ") do not form whole groups of ", group,
          " (a tensor-parallel slice that splits an act-order group, or groups of unequal size)"));
    }
  }
  IntRepacked r;
  r.bits = w.bits;
  r.group = group;
  r.n = out_end - out_begin;
  r.k = k;
  bool identity = true;
  for (int64_t j = 0; j < k_real; ++j) identity = identity && order[j] == j;
  if (!identity) {
    r.perm = order;
    for (int64_t j = k_real; j < k; ++j) r.perm.push_back(static_cast<int32_t>(j));
  }
  const int per_word = 32 / w.bits;
  const int64_t words = k / per_word;
  r.codes.assign(static_cast<size_t>(r.n * words), 0u);
  r.scale.assign(static_cast<size_t>(r.n * groups), 0.0f);
  r.zero.assign(static_cast<size_t>(r.n * groups), 0);
  for (int64_t row = 0; row < r.n; ++row) {
    const int64_t o = out_begin + row;
    for (int64_t g = 0; g < real_groups; ++g) {
      r.scale[row * groups + g] = w.scales[source[g] * w.out + o];
      r.zero[row * groups + g] = static_cast<uint16_t>(PackedZero(w, source[g], o));
    }
    uint32_t* codes = r.codes.data() + row * words;
    for (int64_t j = 0; j < k_real; ++j) {
      const auto q = static_cast<uint32_t>(PackedCode(w, o, in_begin + order[j]));
      codes[j / per_word] |= q << (w.bits * (j % per_word));
    }
  }
  return r;
}

absl::Status AppendRows(IntRepacked& dst, const IntRepacked& piece) {
  if (dst.n == 0 && dst.codes.empty()) {
    dst = piece;
    return absl::OkStatus();
  }
  if (dst.bits != piece.bits || dst.group != piece.group || dst.k != piece.k || dst.perm != piece.perm) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stacked layers differ in layout (bits ", dst.bits, "/", piece.bits, ", group ", dst.group, "/",
        piece.group, ", inputs ", dst.k, "/", piece.k, dst.perm != piece.perm ? ", act order" : "", ")"));
  }
  dst.codes.insert(dst.codes.end(), piece.codes.begin(), piece.codes.end());
  dst.scale.insert(dst.scale.end(), piece.scale.begin(), piece.scale.end());
  dst.zero.insert(dst.zero.end(), piece.zero.begin(), piece.zero.end());
  dst.n += piece.n;
  return absl::OkStatus();
}

void AppendZeroRows(IntRepacked& dst, int64_t rows) {
  const int64_t words = dst.k * dst.bits / 32, groups = dst.k / dst.group;
  dst.codes.resize(dst.codes.size() + static_cast<size_t>(rows * words), 0u);
  dst.scale.resize(dst.scale.size() + static_cast<size_t>(rows * groups), 0.0f);
  dst.zero.resize(dst.zero.size() + static_cast<size_t>(rows * groups), 0);
  dst.n += rows;
}

std::vector<float> DequantizeRepacked(const IntRepacked& r) {
  std::vector<float> out(static_cast<size_t>(r.n * r.k));
  const int per_word = 32 / r.bits;
  const uint32_t mask = (1u << r.bits) - 1;
  const int64_t words = r.k / per_word, groups = r.k / r.group;
  for (int64_t o = 0; o < r.n; ++o) {
    for (int64_t j = 0; j < r.k; ++j) {
      const int q = static_cast<int>((r.codes[o * words + j / per_word] >> (r.bits * (j % per_word))) & mask);
      const int64_t g = o * groups + j / r.group;
      const int64_t col = r.perm.empty() ? j : r.perm[j];
      out[o * r.k + col] = static_cast<float>(q - r.zero[g]) * r.scale[g];
    }
  }
  return out;
}

}  // namespace tpserve::worker::cuda
