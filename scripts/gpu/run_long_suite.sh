#!/usr/bin/env bash
# Issue 24's long-context figures in one device call (7B shape, one GPU):
# batch-1 decode at 32k context with the default decode split cap and with
# TPSERVE_DECODE_MAX_SPLITS=32 (the cap before 2026-11-30), then one-prompt
# prefill at 1k-32k tokens (tpserve_bench) beside HF transformers + SDPA
# (bench/hf_prefill.py) and the ratio table.
# usage: scripts/gpu/run_long_suite.sh OUTDIR BUNDLE   (BUNDLE: bin/tpserve_bench + lib/)
set -u
OUT=$1
mkdir -p /tmp/ls "$OUT" && tar -C /tmp/ls -xJf "$2"
B=/tmp/ls/bin
export LD_LIBRARY_PATH=/tmp/ls/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
SHAPE=tests/fixtures/shapes/qwen2-7b-instruct/config.json
LENGTHS=${LENGTHS:-1024,4096,16384,32768}
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | head -1
echo "=== batch-1 decode at 32k context"
for cap in default 32; do
  env $([[ $cap != default ]] && echo TPSERVE_DECODE_MAX_SPLITS=$cap) timeout 200 $B/tpserve_bench --config $SHAPE \
    --batch 1 --prompt 512 --new 128 --long-context 32768 > "$OUT/long_$cap.txt" 2>&1
  echo "split cap $cap rc=$? $(grep -E '^decode batch 1 ' "$OUT/long_$cap.txt" | tr -s ' ') | $(grep -E 'context:' "$OUT/long_$cap.txt")"
done
echo "=== prefill: tpserve_bench"
timeout 240 $B/tpserve_bench --config $SHAPE --batch 1 --prompt 64 --new 8 --prefill $LENGTHS \
  > "$OUT/tpserve_prefill.txt" 2>&1
grep -E '^prefill' "$OUT/tpserve_prefill.txt"
echo "=== HF transformers + SDPA"
timeout 300 python3 bench/hf_prefill.py --config $SHAPE --lengths $LENGTHS --out "$OUT/hf_prefill.json" \
  > "$OUT/hf_prefill.log" 2>&1 || tail -20 "$OUT/hf_prefill.log"
python3 scripts/gpu/prefill_vs_hf.py "$OUT/tpserve_prefill.txt" "$OUT/hf_prefill.json"
