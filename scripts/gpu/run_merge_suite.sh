#!/usr/bin/env bash
# One device call after merging feature branches: every bundled GPU test, the
# structured-output decode bench without and with the background mask pool
# (issue 21), batch-1/32 decode of bf16, FP8 and the packed int formats
# (issue 20), then served TTFT beside the engine's prefill (issue 24,
# ttft_serve.sh). Each part is skipped once BUDGET seconds (default 540) have
# passed, so the call ends inside the device's 600 s.
# usage: scripts/gpu/run_merge_suite.sh OUTDIR   (bundle: .devbin/bundle.tar.xz from
#   tools/device_bundle.sh bazel-bin/cli/tpserve bazel-bin/bench/cuda/tpserve_bench
#   bazel-bin/bench/cuda/tpserve_structured_bench bazel-bin/worker/cuda/*_test)
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1 BUDGET=${BUDGET:-540}
mkdir -p /tmp/ms "$OUT" && tar -xJf .devbin/bundle.tar.xz -C /tmp/ms
export LD_LIBRARY_PATH=/tmp/ms/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0
B=/tmp/ms/bin CFG=tests/fixtures/shapes/qwen2-7b-instruct/config.json
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
echo "=== GPU tests"
run_gpu_tests 240 "$OUT" $B/*_test
echo "=== structured output, batch 32 ($SECONDS s)"
for th in 0 2; do
  left 60 "structured $th" || break
  timeout 120 $B/tpserve_structured_bench --config $CFG --tokenizer-dir tests/fixtures/tiny-qwen2-chat \
    --batch 32 --prompt 128 --new 128 --precompute-threads $th > "$OUT/structured_$th.log" 2>&1
  echo "precompute threads $th rc=$?"; grep -E '^(free|json)' "$OUT/structured_$th.log"
done
echo "=== decode by weight format ($SECONDS s)"
for q in auto fp8 awq gptq gptq-int8; do
  left 200 "format $q" || break
  timeout 90 $B/tpserve_bench --config $CFG --batch 1,32 --prompt 128 --new 64 --quantization $q \
    > "$OUT/bench_$q.log" 2>&1
  echo "$q rc=$? $(grep -E '^decode batch' "$OUT/bench_$q.log" | tr -s ' ' | tr '\n' ';')"
done
echo "=== served TTFT ($SECONDS s)"
left 150 "ttft" && BUNDLE=.devbin/bundle.tar.xz timeout $((BUDGET - SECONDS)) \
  bash scripts/gpu/ttft_serve.sh "$OUT/ttft" tests/fixtures/shapes/qwen2-7b-instruct 1 1024,32000
echo "=== done in $SECONDS s"
