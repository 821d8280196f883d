// Paged attention over the KV cache written by RopeAndCacheWrite: tensor-core
// prefill kernels (FlashAttention-2 style; causal, variable length, read any
// cached prefix) and a split-KV decode kernel that reads each KV head once for
// its whole query group (GQA).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_H_
#define TPSERVE_WORKER_CUDA_ATTENTION_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "worker/cuda/rope_cache.h"

namespace tpserve::worker::cuda {

// Device-side description of the sequences of one step. All pointers are
// device arrays of `num_seqs` entries (block_tables: num_seqs x
// max_blocks_per_seq).
struct PagedAttnBatch {
  int num_seqs = 0;
  const int* q_start = nullptr;      // first row of the sequence in q / out
  const int* q_len = nullptr;        // query rows this step
  const int* context_len = nullptr;  // keys in the cache after this step
  const int* block_tables = nullptr;
  int max_blocks_per_seq = 0;
};

// Prefill tiles: a thread block owns kPrefillTileRows query rows, packed as
// (position, query head) pairs of one KV head -- row r is position r / G and
// head r % G of the group (G = num_heads / num_kv_heads) -- so each K/V tile
// it loads serves the whole GQA group. A tile covers
// PrefillTilePositions(dims) = kPrefillTileRows / G consecutive positions of
// one sequence.
inline constexpr int kPrefillTileRows = 128;
int PrefillTilePositions(const AttnDims& dims);
// Upper bound on the tiles of a step of `max_tokens` query rows in
// `max_seqs` sequences.
int MaxPrefillTiles(int max_tokens, int max_seqs, const AttnDims& dims);

// Appends the prefill tiles of a sequence with `q_len` rows: pairs
// (seq index, first query row within the sequence), flattened.
void AppendPrefillTiles(int seq_index, int q_len, int tile_positions, std::vector<int>& tiles);

// Which prefill kernel runs. kAuto: the wgmma kernel where the device and the
// build support it (Hopper, sm_90a code present) and head_dim is 64 or 128,
// else the mma.sync kernel (sm_80 and newer, head_dim 32/64/128).
enum class PrefillKernel { kAuto, kMma, kWgmma };
// True when kWgmma can run on the current device.
bool PrefillWgmmaAvailable();

// Prefill / mixed step: for every query row of every sequence, causal
// attention over the sequence's first (context_len - q_len + row + 1) keys,
// read through the block table (any cached prefix included). `q` rows have
// stride `q_stride` elements (the fused qkv buffer); `out` is
// [rows, num_heads * head_dim]. `tiles` is the device copy of
// AppendPrefillTiles' output (`num_tiles` pairs, PrefillTilePositions(dims)
// positions each). A kernel that cannot run here is a FailedPrecondition.
absl::Status PagedPrefillAttention(const __nv_bfloat16* q, int q_stride, __nv_bfloat16* out,
                                   const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
                                   const PagedAttnBatch& batch, const int* tiles, int num_tiles,
                                   const AttnDims& dims, cudaStream_t stream,
                                   PrefillKernel kernel = PrefillKernel::kAuto);
// The same over a cache of either element type. An FP8 cache runs the
// mma.sync kernel, which converts each E4M3 K/V row to bf16 on its way into
// shared memory (the wgmma kernel's TMA copies bytes as they are): kAuto
// picks it, kWgmma is a FailedPrecondition. The k scale is folded into the
// softmax scale, the v scale into the output's normalisation.
absl::Status PagedPrefillAttention(const __nv_bfloat16* q, int q_stride, __nv_bfloat16* out, const KvCacheRef& kv,
                                   const PagedAttnBatch& batch, const int* tiles, int num_tiles,
                                   const AttnDims& dims, cudaStream_t stream,
                                   PrefillKernel kernel = PrefillKernel::kAuto);

// Split-KV partitioning of a decode step: every (sequence, KV head) is cut
// into num_splits blocks, and the kernel shares each sequence's actual
// context evenly among them (at least 64 keys per split). The count depends
// only on the batch size, the KV heads and an upper bound on the context, so
// a CUDA graph captured for a batch bucket with max_context = max_model_len
// stays valid, and fast, for every later step of that bucket.
struct DecodePartition {
  int num_splits = 1;  // 1 to 128
  // The kernel's wide form (attention_decode.cuh): a lane requests a whole
  // key row and 16 value rows at once. Faster where a step is a chain of
  // memory round trips; its registers cost occupancy where the batch fills
  // the GPU (H200, 7B shape, 512-token contexts: batch 1 and 32 faster,
  // batch 128 slower). The same result either way, bit for bit.
  bool wide_loads = false;
  // The tensor-core kernel (attention_decode_mma.cuh): the query group on
  // mma.sync's M side instead of one key a lane. Not bit-identical to the
  // other two (P is rounded to bf16 for its mma); wide_loads does not apply.
  // Built for head dimensions 64 and 128 (the Qwen2 family's); other head
  // dimensions and the fused-RoPE form run the FMA kernels.
  bool tensor_cores = false;
};
// Decode blocks per SM that ChooseDecodePartition aims for: one for the
// tensor-core kernel, two for the FMA kernels (TPSERVE_DECODE_MMA=0), which
// read long contexts faster with more splits (docs/performance.md).
inline constexpr int kDecodeBlocksPerSmMma = 1;
inline constexpr int kDecodeBlocksPerSmFma = 2;
// The one of the two for the kernel decode steps use, or
// TPSERVE_DECODE_BLOCKS_PER_SM (1-8, read once) for A/B runs.
int DecodeBlocksPerSm();
// Enough splits that about DecodeBlocksPerSm() blocks run per SM of a GPU with
// `num_sms` SMs (the device's, DeviceInfo::num_sms; fewer when the batch
// already fills the GPU or the context is short), at most 128 (or
// TPSERVE_DECODE_MAX_SPLITS); the wide form while the (sequence, KV head)
// pairs number at most one per SM; the tensor-core kernel unless
// TPSERVE_DECODE_MMA=0.
DecodePartition ChooseDecodePartition(int num_seqs, int num_kv_heads, int max_context, int num_sms);
// Bytes of float workspace a decode step needs (0 with one split).
size_t DecodeWorkspaceBytes(int num_seqs, int num_heads, int head_dim, const DecodePartition& p);

// Decode step: sequence s has one query row, row s. `workspace` holds
// DecodeWorkspaceBytes bytes.
absl::Status PagedDecodeAttention(const __nv_bfloat16* q, int q_stride, __nv_bfloat16* out,
                                  const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
                                  const PagedAttnBatch& batch, const DecodePartition& partition,
                                  void* workspace, const AttnDims& dims, cudaStream_t stream);
// The same over a cache of either element type (FP8: E4M3 rows converted as
// they are read; the k scale folded into the softmax scale, the v scale
// applied to the output).
absl::Status PagedDecodeAttention(const __nv_bfloat16* q, int q_stride, __nv_bfloat16* out, const KvCacheRef& kv,
                                  const PagedAttnBatch& batch, const DecodePartition& partition,
                                  void* workspace, const AttnDims& dims, cudaStream_t stream);

// How a decode step applies RoPE and writes this step's K/V. kSeparate:
// RopeAndCacheWrite, then PagedDecodeAttention. kFused: one kernel -- every
// block rotates its own query group's q, and the block whose split holds
// position context_len - 1 rotates that token's k and stores k and v at its
// slot (skipped when negative: padding rows); the output and every cache
// byte are bit-identical to kSeparate (same angle, same bf16 rounding of
// rotated q/k, same FP8 conversion) and qkv is left unrotated. kAuto:
// kSeparate unless TPSERVE_DECODE_FUSED_ROPE=1. On an H200 (7B shape) the two
// were equal at 512-token contexts and kFused was 0.47 ms a token slower at
// 32k (docs/performance.md, "Decode attention: prefetch before the wait").
enum class DecodeRope { kAuto, kSeparate, kFused };

// A decode step from unrotated qkv rows (row s for sequence s; `positions`
// and `slot_mapping` as RopeAndCacheWrite takes them): RoPE, the KV write
// and attention, as `mode` says.
absl::Status PagedDecodeAttentionWithRope(__nv_bfloat16* qkv, int q_stride, __nv_bfloat16* out,
                                          const int* positions, const int* slot_mapping, const KvCacheRef& kv,
                                          const PagedAttnBatch& batch, const DecodePartition& partition,
                                          void* workspace, const AttnDims& dims, const RopeParams& rope,
                                          cudaStream_t stream, DecodeRope mode = DecodeRope::kAuto);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_H_
