#!/usr/bin/env bash
# Issue 17's acceptance in one device call: the in-process engine bench
# (bench/cuda:tpserve_bench) and the served path (`tpserve serve` driven by
# `tpserve bench serve`) back to back, same shape (7B, dummy weights), same
# lengths (512-token random prompts, 256 new tokens, ignore_eos), at every
# concurrency in the list; then the same served runs at each TP size.
#
# Served decode tok/s = concurrency / mean TPOT with one wave of `concurrency`
# requests (all decoding together), the same quantity the engine bench's
# decode tok/s measures (batch / step time).
#
# usage: scripts/gpu/serve_vs_engine.sh OUTDIR [CONCURRENCIES] [TP_SIZES]
#   bundle first: tools/device_bundle.sh bazel-bin/cli/tpserve bazel-bin/bench/cuda/tpserve_bench
#   (carry .devbin); defaults: CONCURRENCIES=1,32,128,256 TP_SIZES=1 (use "1 2" on 2 GPUs);
#   BUNDLE=path picks another archive (default .devbin/bundle.tar.xz)
set -u
OUT=$1
LIST=${2:-1,32,128,256}
TPS=${3:-1}
mkdir -p /tmp/tp "$OUT" && tar -xJf "${BUNDLE:-.devbin/bundle.tar.xz}" -C /tmp/tp
export LD_LIBRARY_PATH=/tmp/tp/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
BIN=/tmp/tp/bin
SHAPE_DIR=tests/fixtures/shapes/qwen2-7b-instruct
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

echo "=== engine: tpserve_bench (GPU 0)"
CUDA_VISIBLE_DEVICES=0 timeout 300 "$BIN/tpserve_bench" --config "$SHAPE_DIR/config.json" \
  --batch "$LIST" --prompt 512 --new 256 --prefill 512 > "$OUT/engine.txt" 2>&1
grep -E "^(decode|prefill|batch-1)" "$OUT/engine.txt" || tail -20 "$OUT/engine.txt"

for tp in $TPS; do
  echo "=== served: tpserve serve --tensor-parallel-size $tp"
  log="$OUT/serve_tp$tp.log"
  "$BIN/tpserve" serve --model "$SHAPE_DIR" --load-format dummy --tokenizer tests/fixtures/tiny-qwen2-chat \
    --served-model-name m --tensor-parallel-size "$tp" --max-num-seqs 256 --port 8000 > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q "ready in" "$log" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.25
  done
  grep -q "ready in" "$log" || { echo "serve did not start"; tail -20 "$log"; kill -TERM $pid; continue; }
  # One small warm-up run so graph capture and first-touch costs stay out.
  timeout 120 "$BIN/tpserve" bench serve --base-url http://127.0.0.1:8000 --model m \
    --tokenizer tests/fixtures/tiny-qwen2-chat --dataset-name random --random-input-len 512 \
    --random-output-len 32 --ignore-eos --num-prompts 8 --max-concurrency 8 > /dev/null 2>&1
  for c in ${LIST//,/ }; do
    timeout 240 "$BIN/tpserve" bench serve --base-url http://127.0.0.1:8000 --model m \
      --tokenizer tests/fixtures/tiny-qwen2-chat --dataset-name random --random-input-len 512 \
      --random-output-len 256 --ignore-eos --num-prompts "$c" --max-concurrency "$c" --seed "$((1000 + c))" \
      --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99 \
      --save-result --result-dir "$OUT" --result-filename "served_tp${tp}_c$c.json" \
      > "$OUT/served_tp${tp}_c$c.txt" 2>&1 || tail -5 "$OUT/served_tp${tp}_c$c.txt"
    # The router's step histograms so far (cumulative: subtract the previous file's). curl without the
    # bundle's libraries (an older libcurl there breaks the system curl).
    env -u LD_LIBRARY_PATH curl -s http://127.0.0.1:8000/metrics |
      grep -E "^tpserve:(step_duration_seconds|tokens_per_step)_(sum|count)" > "$OUT/step_metrics_tp${tp}_c$c.txt"
  done
  kill -TERM $pid
  wait $pid
done

echo "=== table"
python3 - "$OUT" "$LIST" "$TPS" <<'PY'
import json, os, re, sys
out, conc, tps = sys.argv[1], [int(c) for c in sys.argv[2].split(",")], sys.argv[3].split()
engine = {}
for line in open(os.path.join(out, "engine.txt")):
    if line.startswith("JSON "):
        for r in json.loads(line[5:])["decode"]:
            engine[r["batch"]] = r
print("| TP | streams | engine decode tok/s | engine ms/step | served decode tok/s | served/engine | served ITL p50 ms | output tok/s |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for tp in tps:
    for c in conc:
        p = os.path.join(out, f"served_tp{tp}_c{c}.json")
        if not os.path.exists(p):
            print(f"| {tp} | {c} | | | failed | | | |"); continue
        r = json.load(open(p))
        served = c * 1000.0 / r["mean_tpot_ms"] if r.get("mean_tpot_ms") else 0
        e = engine.get(c, {})
        etps = e.get("decode_tok_s", 0)
        ems = 1000.0 * c / etps if etps else 0
        ratio = f"{100 * served / etps:.0f}%" if etps and tp == "1" else ""
        print(f"| {tp} | {c} | {etps:.1f} | {ems:.2f} | {served:.1f} | {ratio} | "
              f"{r.get('p50_itl_ms', r.get('median_itl_ms', 0)):.2f} | {r['output_throughput']:.1f} |")
PY
