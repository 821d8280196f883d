#!/usr/bin/env bash
# Where a batch-1 decode step's time goes: Nsight Compute (ncu) times every
# kernel of tpserve_bench's decode steps (CUDA-graph nodes one by one, clocks
# left alone, caches not flushed), and scripts/gpu/decode_profile.py splits
# the launches into steps and prints one decode step kernel by kernel, the
# sum per kernel family, and the sum against the bench's own ms/step (the
# difference is launch gaps and dependencies between kernels).
# usage: scripts/gpu/profile_decode.sh OUTDIR BUNDLE [QUANT...]   (QUANT: auto fp8; default both)
#   BUNDLE: an xz tar with bin/tpserve_bench and lib/ (tools/device_bundle.sh).
#   CONFIG (default the 7B shape) and BATCH (default 1) pick the model and batch.
set -u
OUT=$1
BUNDLE=$2
shift 2
QUANTS=${*:-auto fp8}
mkdir -p /tmp/pd "$OUT" && tar -C /tmp/pd -xJf "$BUNDLE"
B=$(dirname "$(find /tmp/pd -name tpserve_bench -type f | head -1)")
export LD_LIBRARY_PATH=$B/../lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0
CONFIG=${CONFIG:-tests/fixtures/shapes/qwen2-7b-instruct/config.json}
BATCH=${BATCH:-1}
for q in $QUANTS; do
  echo "=== $q: tpserve_bench (no profiler)"
  timeout 200 $B/tpserve_bench --config "$CONFIG" --batch "$BATCH" --prompt 64 --new 64 --quantization "$q" \
    > "$OUT/bench_$q.log" 2>&1
  grep -v '^JSON' "$OUT/bench_$q.log" | grep -i 'decode' | tail -3
  echo "=== $q: ncu"
  timeout 400 ncu --clock-control none --cache-control none --csv --page raw \
    --metrics gpu__time_duration.sum \
    $B/tpserve_bench --config "$CONFIG" --batch "$BATCH" --prompt 64 --new 4 --quantization "$q" \
    > "$OUT/ncu_$q.csv" 2> "$OUT/ncu_$q.err"
  echo "ncu rc=$?"; tail -3 "$OUT/ncu_$q.err"
  python3 scripts/gpu/decode_profile.py "$OUT/ncu_$q.csv" "$OUT/bench_$q.log"
done
