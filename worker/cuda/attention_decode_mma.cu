// Launches of the tensor-core decode kernel (attention_decode_mma.cuh) for
// the head dimensions and query groups attention_decode.cu dispatches; in a
// file of its own so that nvcc compiles these and the FMA kernels in parallel.
#include "absl/strings/str_cat.h"
#include "worker/cuda/attention_decode_mma.cuh"
#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {
namespace {

template <int D, int G, typename KV>
absl::Status Launch(const DecodeMmaLaunch& l) {
  const dim3 grid(l.batch.num_seqs, l.num_kv_heads, l.num_splits);
  TP_CUDA_CHECK(LaunchPdl(DecodeMmaKernel<D, G, KV>, grid, dim3(kDecodeWarps * 32), 0, l.stream, l.q, l.q_stride,
                          l.out, l.part_o, l.part_lse, static_cast<const KV*>(l.k_cache),
                          static_cast<const KV*>(l.v_cache), l.batch, l.num_heads, l.num_kv_heads, l.block_size,
                          l.scale_log2, l.v_scale, l.num_splits, l.prefetch_keys));
  return absl::OkStatus();
}

template <int D, typename KV>
absl::Status ForGroup(int group, const DecodeMmaLaunch& l) {
  switch (group) {
    case 1: return Launch<D, 1, KV>(l);
    case 2: return Launch<D, 2, KV>(l);
    case 4: return Launch<D, 4, KV>(l);
    case 7: return Launch<D, 7, KV>(l);
    case 8: return Launch<D, 8, KV>(l);
    default: return absl::UnimplementedError(absl::StrCat("decode attention on tensor cores: group ", group));
  }
}

}  // namespace

absl::Status LaunchDecodeMma(int head_dim, int group, KvCacheDtype dtype, const DecodeMmaLaunch& l) {
  return WithKvElement(dtype, [&](auto tag) -> absl::Status {
    using KV = decltype(tag);
    switch (head_dim) {
      case 64: return ForGroup<64, KV>(group, l);
      case 128: return ForGroup<128, KV>(group, l);
      default: return absl::UnimplementedError(absl::StrCat("decode attention on tensor cores: head_dim ", head_dim));
    }
  });
}

}  // namespace tpserve::worker::cuda
