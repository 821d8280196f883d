#!/usr/bin/env bash
# Issues 17, 19 and 20's two-GPU measurements in ONE device call (nvidia-h200-x2), ~7 minutes:
#   1. allreduce_test and cuda_backend_test on both GPUs (custom all-reduce vs NCCL, fused add + norm);
#   2. tpserve_collective_bench --tp 2, 7B and 72B shapes (per fused all-reduce at batch 1; goal <= 3.5 us);
#   3. the TP=2 engine step beside TP=1 and beside one rank's share on one GPU (scripts/gpu/rank_shape.py),
#      7B shape, batch 1 and 128: how much of the TP=2 step is collectives, how much half-width kernels;
#   4. the 72B shape at TP=2, bf16 and FP8, batch 1 (issue 20: FP8 against bf16 at TP=2; issue 19: the
#      step against the roofline that scripts/gpu/roofline.py prints with the measured collectives);
#   5. scripts/gpu/serve_vs_engine.sh at TP 1 and 2, 1 and 128 streams (issue 17: TP=2 served >= 1.7x / 1.5x
#      TP=1), last, as the longest.
# usage: scripts/gpu/run_tp2_suite.sh OUTDIR BUNDLE
#   BUNDLE (tools/device_bundle.sh): bin/{tpserve,tpserve_bench,tpserve_collective_bench,allreduce_test,
#   cuda_backend_test} + lib/. SKIP_SERVE=1 leaves out step 5; STREAMS (default 1,128) its concurrencies.
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
BUNDLE=$2
mkdir -p /tmp/tp "$OUT" && tar -xJf "$BUNDLE" -C /tmp/tp
B=/tmp/tp/bin
export LD_LIBRARY_PATH=/tmp/tp/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -4
S7=tests/fixtures/shapes/qwen2-7b-instruct/config.json
S72=tests/fixtures/shapes/qwen2-72b-instruct/config.json

echo "=== 1. GPU tests"
run_gpu_tests 200 "$OUT" "$B/allreduce_test" "$B/cuda_backend_test"

echo "=== 2. collectives of one decode step, TP=2"
for shape in 7b 72b; do
  cfg=$S7; [[ $shape == 72b ]] && cfg=$S72
  timeout 120 "$B/tpserve_collective_bench" --config "$cfg" --tp 2 --batch 1,32 > "$OUT/coll_$shape.txt" 2>&1
  echo "--- $shape rc=$?"; grep -v '^\[' "$OUT/coll_$shape.txt" | tail -14
done

engine() {  # label, then tpserve_bench flags; prints its decode lines
  local label=$1; shift
  echo "--- $label $(run_bench "$OUT/engine_$label.txt" 200 "$B/tpserve_bench" "$@")"
}
echo "=== 3. engine step, 7B: TP=1, one TP=2 rank alone, TP=2"
python3 scripts/gpu/rank_shape.py $S7 --tp 2 --out /tmp/tp/r2 > /dev/null
engine tp1_7b --config $S7 --batch 1,128 --prompt 512 --new 128
engine rank2_7b --config /tmp/tp/r2/config.json --batch 1,128 --prompt 512 --new 128
engine tp2_7b --config $S7 --tp 2 --batch 1,128 --prompt 512 --new 128
(export TPSERVE_CUSTOM_ALLREDUCE=0; engine tp2_7b_nccl --config $S7 --tp 2 --batch 1,128 --prompt 512 --new 128)

echo "=== 4. 72B at TP=2, batch 1: bf16 and FP8, and the roofline"
engine tp2_72b --config $S72 --tp 2 --batch 1 --prompt 512 --new 64
engine tp2_72b_fp8 --config $S72 --tp 2 --batch 1 --prompt 512 --new 64 --quantization fp8
coll=$(awk -F'|' '$2+0 == 1 {print $5+0}' "$OUT/coll_72b.txt" | head -1)
timeout 60 python3 scripts/gpu/roofline.py --config $S72 --tp 2 --collectives-us "${coll:-0}" \
  --out "$OUT/roofline_72b_tp2.json" 2>&1 | tail -1

if [[ "${SKIP_SERVE:-0}" != 1 ]]; then
  echo "=== 5. served against engine, TP 1 and 2"
  BUNDLE=$BUNDLE timeout 330 bash scripts/gpu/serve_vs_engine.sh "$OUT/serve" "${STREAMS:-1,128}" "1 2" 2>&1 | tail -12
fi
