#!/usr/bin/env bash
# What each kernel of a batch-1 decode step costs inside the real CUDA graph (programmatic dependent launch
# on), measured by leaving it out: tpserve_bench built with scripts/gpu/ablation/ablate.patch applied reads
# TPSERVE_ABLATE=<kernel> and skips that launch in every decode step (norm = both AddRmsNorms of every
# layer, rope = RoPE + KV write, merge = the split merge, attn = RoPE + attention + merge, qkv / o / gate_up /
# down = one GEMV of every layer, lmhead = the lm_head GEMV). The step's output is then wrong; only its
# time is read. Nsight Compute times each kernel alone (docs/performance.md, "Decode-step kernels"), which
# counts the overlap PDL hides; this counts only what the step actually waits for. To build the patched
# bench: `git worktree add /tmp/ab main && git -C /tmp/ab apply $PWD/scripts/gpu/ablation/ablate.patch`, then
# build //bench/cuda:tpserve_bench there and bundle it as tpserve_bench_ablate (the patch is against main
# at 0846cdd; a later change to the two files it touches may need it redone).
# Also in the same call: the unpatched bench as the baseline (before and after), the decode split cap swept
# at batch 1 (TPSERVE_DECODE_MAX_SPLITS), and one TP=2 rank's share of the model on this GPU
# (scripts/gpu/rank_shape.py: the per-rank GEMVs and small kernels of a TP=2 step, without collectives).
# usage: scripts/gpu/run_step_ablation.sh OUTDIR BUNDLE
#   BUNDLE (tools/device_bundle.sh, bin/ + lib/): bin/tpserve_bench (unpatched), bin/tpserve_bench_ablate
#   (patched), optionally GPU tests bin/*_test, run first. KINDS: ablations to run (default all).
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
unpack_bundle /tmp/ab "$2" "$OUT" || exit 1
if compgen -G "$B/*_test" > /dev/null; then
  echo "=== GPU tests"
  run_gpu_tests "${TEST_S:-240}" "$OUT" $B/*_test
fi
CFG=tests/fixtures/shapes/qwen2-7b-instruct/config.json
F=(--batch 1 --prompt 512 --new 128)
step() {  # label, binary, then bench flags; prints "label ms"
  local label=$1 bin=$2; shift 2
  local log
  log="$OUT/$(echo "$label" | tr ' =,/' '____').log"
  local r line ms
  r=$(run_bench "$log" 120 "$bin" "$@")
  line=$(grep -E '^decode batch 1 ' "$log" | head -1)
  ms=$(echo "$line" | awk '{print $5}')  # decode batch 1 <tok/s> <ms/step>
  printf '%-34s %s  (%s) %s\n' "$label" "${ms:-?}" "${r%% *}" "$line"
}
for q in auto fp8; do
  echo "=== $q: ms per batch-1 decode step (7B shape, 512-token prompt, 128 new tokens)"
  step "$q base" $B/tpserve_bench --config $CFG "${F[@]}" --quantization $q
  step "$q patched, nothing left out" $B/tpserve_bench_ablate --config $CFG "${F[@]}" --quantization $q
  for k in ${KINDS:-norm rope merge attn qkv o gate_up down lmhead}; do
    TPSERVE_ABLATE=$k step "$q without $k" $B/tpserve_bench_ablate --config $CFG "${F[@]}" --quantization $q
  done
  step "$q base (again)" $B/tpserve_bench --config $CFG "${F[@]}" --quantization $q
done
echo "=== decode split cap at batch 1 (bf16; graph captured for the bench's max_model_len)"
for n in 1 8 16 32; do
  TPSERVE_DECODE_MAX_SPLITS=$n step "splits <= $n" $B/tpserve_bench --config $CFG "${F[@]}"
done
echo "=== one TP=2 rank's share on one GPU (no collectives)"
python3 scripts/gpu/rank_shape.py $CFG --tp 2 --out /tmp/ab/r2 > /dev/null
for q in auto fp8; do
  timeout 150 $B/tpserve_bench --config /tmp/ab/r2/config.json --batch 1,128 --prompt 512 --new 128 \
    --quantization $q > "$OUT/rank2_$q.log" 2>&1
  echo "rank of TP=2, $q rc=$?: $(grep -E '^decode batch' "$OUT/rank2_$q.log" | tr -s ' ' | tr '\n' ';')"
done
