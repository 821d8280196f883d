#!/usr/bin/env bash
# Issue 24's time to first token through the whole service, beside the
# engine's prefill of the same lengths in the same call: `tpserve serve`
# (dummy weights, --max-model-len 32768, default token budget) driven by
# `tpserve bench serve` one request at a time (random prompts of LEN tokens,
# one output token, a seed per run so nothing hits the prefix cache; no
# ready-check request, which would send the first prompt once before the
# run and turn the run's first request into a prefix-cache hit), and
# `tpserve_bench --prefill` on the same GPU(s).
# usage: scripts/gpu/ttft_serve.sh OUTDIR SHAPE TP LENGTHS
#   e.g. ttft_serve.sh out tests/fixtures/shapes/qwen2-7b-instruct 1 1024,32000
#   bundle: tools/device_bundle.sh bazel-bin/cli/tpserve bazel-bin/bench/cuda/tpserve_bench (carry .devbin)
#   BUNDLE (default .devbin/bundle.tar.xz); EXTRA: extra `serve` flags.
set -u
OUT=$1 SHAPE=$2 TP=$3 LENS=$4
mkdir -p /tmp/tt "$OUT" && tar -xJf "${BUNDLE:-.devbin/bundle.tar.xz}" -C /tmp/tt
export LD_LIBRARY_PATH=/tmp/tt/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
BIN=/tmp/tt/bin
name=$(basename "$SHAPE")_tp$TP
echo "=== engine: tpserve_bench --tp $TP --prefill $LENS ($name)"
timeout 300 "$BIN/tpserve_bench" --config "$SHAPE/config.json" --tp "$TP" --batch 1 --prompt 64 --new 8 \
  --prefill "$LENS" > "$OUT/engine_$name.txt" 2>&1
grep -E "^prefill" "$OUT/engine_$name.txt" || tail -20 "$OUT/engine_$name.txt"
echo "=== served: tpserve serve --tensor-parallel-size $TP ${EXTRA:-}"
log="$OUT/serve_$name.log"
# shellcheck disable=SC2086
"$BIN/tpserve" serve --model "$SHAPE" --load-format dummy --tokenizer tests/fixtures/tiny-qwen2-chat \
  --served-model-name m --tensor-parallel-size "$TP" --max-model-len 32768 --port 8000 ${EXTRA:-} > "$log" 2>&1 &
pid=$!
for _ in $(seq 1 1600); do
  grep -q "ready in" "$log" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.25
done
grep -q "ready in" "$log" || { echo "serve did not start"; tail -20 "$log"; kill -TERM $pid; exit 1; }
grep -E "ready in|KV cache" "$log" | head -3
run() {  # len, count, seed
  timeout 200 "$BIN/tpserve" bench serve --base-url http://127.0.0.1:8000 --model m \
    --tokenizer tests/fixtures/tiny-qwen2-chat --dataset-name random --random-input-len "$1" \
    --random-output-len 1 --ignore-eos --num-prompts "$2" --max-concurrency 1 --seed "$3" \
    --ready-check-timeout-sec 0 \
    --percentile-metrics ttft,e2el --metric-percentiles 50,99 --save-result --result-dir "$OUT" \
    --result-filename "ttft_${name}_$1.json" > "$OUT/ttft_${name}_$1.txt" 2>&1
  echo "len $1: rc=$? $(grep -E 'Mean TTFT|Median TTFT' "$OUT/ttft_${name}_$1.txt" | tr -s ' ' | tr '\n' ' ')"
}
run 512 4 7 > /dev/null  # warm-up: graph capture and first-touch costs stay out
for len in ${LENS//,/ }; do
  n=$(( len > 8192 ? 3 : 8 ))
  run "$len" "$n" "$((len % 997 + TP))"
done
kill -TERM $pid
wait $pid
