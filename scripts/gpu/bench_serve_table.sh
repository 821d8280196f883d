#!/usr/bin/env bash
# `tpserve bench serve` on one GPU, in one call: `tpserve serve` (Qwen2-7B shape, dummy weights), then
#  1. `tpserve bench serve` and bench/serve_bench.py at concurrency 32 (32 streams x 512 in / 256 out):
#     output throughput of the two clients side by side;
#  2. the table: random 512 in / 256 out (ignore_eos) at max-concurrency 1, 32, 128, 256 and request
#     rates 4, 16, inf.
# usage: scripts/gpu/bench_serve_table.sh DIR OUTDIR
#   DIR: bundle.tar.xz (tools/device_bundle.sh with cli/tpserve), serve_bench.py, shape/ (config.json,
#   generation_config.json), tok/ (tokenizer.json, tokenizer_config.json). Everything lands in
#   OUTDIR/results.tgz; the summary table is printed last. BENCH_IN / BENCH_OUT change the lengths
#   (a dry run on CPU with the tiny model: BENCH_IN=32 BENCH_OUT=8), BENCH_PORT the port (8000).
set -u
D=$(cd "$1" && pwd); OUT=$2
T=$(mktemp -d)
R=$T/results
PORT=${BENCH_PORT:-8000}
mkdir -p "$T/tp" "$OUT" "$R/json" && tar -xJf "$D/bundle.tar.xz" -C "$T/tp"
export LD_LIBRARY_PATH=$T/tp/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
BIN=$T/tp/bin/tpserve
MODEL=qwen2-7b
IN=${BENCH_IN:-512} NEW=${BENCH_OUT:-256}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$R/gpu.txt"
nproc | tee -a "$R/gpu.txt"
"$BIN" serve --model "$D/shape" --load-format dummy --tokenizer "$D/tok" --served-model-name $MODEL \
  --max-model-len 4096 --max-num-seqs 256 --port $PORT > "$R/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 480); do
  grep -q "ready in" "$R/serve.log" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.25
done
grep -E "ready in|KV|graph" "$R/serve.log" | head -4
if ! grep -q "ready in" "$R/serve.log"; then
  tail -30 "$R/serve.log"; kill -TERM $pid; tar -czf "$OUT/results.tgz" -C "$R" .; exit 1
fi
B=("$BIN" bench serve --port $PORT --model $MODEL --tokenizer "$D/tok" --random-input-len $IN
   --random-output-len $NEW --disable-tqdm --percentile-metrics ttft,tpot,itl,e2el
   --metric-percentiles 50,99 --save-result --result-dir "$R/json")
# $1 name, $2 timeout (s), rest: extra flags.
bench() {
  local name=$1 t=$2; shift 2
  timeout "$t" "${B[@]}" "$@" --result-filename "$name.json" > "$R/$name.txt" 2>&1
  echo "$name: rc=$? $(grep -E 'Output token throughput' "$R/$name.txt")"
  snap
}
# What has been measured so far comes back even if the call is cut short.
snap() { tar -czf "$OUT/results.tgz" -C "$R" .; }
echo "=== 1. the two clients at concurrency 32"
# serve_bench.py draws its prompts from a fixed seed, so only its first run
# meets an empty prefix cache: it runs once, between two tpserve runs.
bench cmp_tpserve_1 60 --num-prompts 32 --max-concurrency 32 --seed 1
timeout 60 python3 "$D/serve_bench.py" --url http://127.0.0.1:$PORT --model $MODEL --ttft-prompt 16 \
  --repeat 1 --batch 32 --decode-prompt $IN --new $NEW --out "$R/cmp_py_1.json" > "$R/cmp_py_1.txt" 2>&1
echo "cmp_py_1: rc=$? $(tail -1 "$R/cmp_py_1.txt")"
bench cmp_tpserve_2 60 --num-prompts 32 --max-concurrency 32 --seed 2 --ready-check-timeout-sec 0
echo "=== 2. the table (a seed of its own per row: no prompt is in the prefix cache already)"
bench c1 40 --max-concurrency 1 --num-prompts 4 --ready-check-timeout-sec 0 --seed 11
bench c32 40 --max-concurrency 32 --num-prompts 64 --ready-check-timeout-sec 0 --seed 12
bench c128 45 --max-concurrency 128 --num-prompts 256 --ready-check-timeout-sec 0 --seed 13
bench c256 60 --max-concurrency 256 --num-prompts 512 --ready-check-timeout-sec 0 --seed 14
bench r4 40 --request-rate 4 --num-prompts 64 --ready-check-timeout-sec 0 --seed 15
bench r16 40 --request-rate 16 --num-prompts 128 --ready-check-timeout-sec 0 --seed 16
bench rinf 45 --num-prompts 256 --ready-check-timeout-sec 0 --seed 17
kill -TERM $pid
wait $pid
echo "serve exit code: $?"
python3 - "$R" <<'PY' | tee "$R/summary.txt"
import json, os, sys
r = sys.argv[1]
print("| run | conc. | rate | ok/failed | s | req/s | out tok/s | total tok/s | TTFT mean / p50 / p99 ms "
      "| TPOT mean / p99 ms | ITL p50 / p99 ms | E2EL p50 / p99 ms |")
print("|" + " --- |" * 12)
for name in ["cmp_tpserve_1", "cmp_tpserve_2", "c1", "c32", "c128", "c256", "r4", "r16", "rinf"]:
    p = os.path.join(r, "json", name + ".json")
    if not os.path.exists(p):
        print(f"| {name} | not run |"); continue
    j = json.load(open(p))
    print(f"| {name} | {j['max_concurrency']} | {j['request_rate']} | {j['completed']}/{j['failed']} "
          f"| {j['duration']:.2f} | {j['request_throughput']:.2f} | {j['output_throughput']:.1f} "
          f"| {j['total_token_throughput']:.1f} | {j['mean_ttft_ms']:.1f} / {j['p50_ttft_ms']:.1f} / "
          f"{j['p99_ttft_ms']:.1f} | {j['mean_tpot_ms']:.2f} / {j['p99_tpot_ms']:.2f} | "
          f"{j['p50_itl_ms']:.2f} / {j['p99_itl_ms']:.2f} | {j['p50_e2el_ms']:.0f} / {j['p99_e2el_ms']:.0f} |")
for i in (1,):
    p = os.path.join(r, f"cmp_py_{i}.json")
    if os.path.exists(p):
        d = json.load(open(p))["decode"][0]
        print(f"serve_bench.py run {i}: batch {d['batch']}, {d['tokens']} tokens in {d['wall_s']:.2f} s = "
              f"{d['throughput_tok_s']:.1f} tok/s (decode-only {d['decode_tok_s']:.1f})")
PY
snap
