#!/usr/bin/env bash
# Everything issue 10 measures, in one call on a 4-GPU machine: NCCL
# communicator test, the collectives of one decode step (in a CUDA graph) and
# the batch-1 roofline they give, the whole cluster (`tpserve serve`, 72B
# shape, dummy weights, TP=4) with a curl streaming chat and serve_bench, and
# TP=2/4 vs TP=1 on HF-saved random checkpoints (last: the longest).
# usage: scripts/gpu/run_tp_suite.sh OUTDIR   (bundle from tools/device_bundle.sh)
#   SKIP_TP_CHECK=1 leaves out the TP vs TP=1 comparison; TP_CHECKPOINT=random|trained|both picks its
#   checkpoints (scripts/gpu/checkpoints.py); SKIP_SERVE=1 leaves out the cluster run, SKIP_NCCL_TEST=1
#   the communicator test.
set -u
OUT=$1
mkdir -p /tmp/tp "$OUT" && tar -xJf .devbin/bundle.tar.xz -C /tmp/tp
export LD_LIBRARY_PATH=/tmp/tp/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
SHAPE=qwen2-72b-instruct
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [[ "${SKIP_NCCL_TEST:-0}" != 1 ]]; then
  echo "=== NCCL communicator test"
  timeout 120 /tmp/tp/bin/nccl_communicator_test 2>&1 | tail -3
fi
echo "=== collectives of one decode step ($SHAPE)"
for tp in 2 4; do
  timeout 90 /tmp/tp/bin/tpserve_collective_bench --config tests/fixtures/shapes/$SHAPE/config.json --tp $tp \
    --batch 1,32 > "$OUT/collectives_tp$tp.txt" 2>&1
  cat "$OUT/collectives_tp$tp.txt" | grep -v "^\[" | tail -5
done
coll=$(awk -F'|' '$2+0 == 1 {print $5+0}' "$OUT/collectives_tp4.txt" | head -1)
echo "=== roofline ($SHAPE, TP=4, collectives ${coll:-?} us/step)"
timeout 60 python3 scripts/gpu/roofline.py --config tests/fixtures/shapes/$SHAPE/config.json --tp 4 \
  --collectives-us "${coll:-0}" --out "$OUT/roofline.json" 2>&1 | tail -1
if [[ "${SKIP_SERVE:-0}" != 1 ]]; then
  echo "=== tpserve serve, $SHAPE, dummy weights, TP=4"
  timeout 300 bash scripts/gpu/serve_tp.sh /tmp/tp/bin/tpserve $SHAPE 4 "$OUT" \
    --gpu-memory-utilization 0.9 --max-model-len 4096 --max-num-seqs 64
  grep -E "KV|graph|ready|profil|memory" "$OUT/serve_$SHAPE.log" | sort -u | head -8
fi
if [[ "${SKIP_TP_CHECK:-0}" != 1 ]]; then
  echo "=== TP vs TP=1 (HF-saved random checkpoints)"
  timeout ${TP_CHECK_TIMEOUT:-400} python3 scripts/gpu/tp_check.py --bin /tmp/tp/bin/tpserve_tp_check --tp 1,2,4 \
    --checkpoint "${TP_CHECKPOINT:-random}" --out "$OUT/tp.json" > "$OUT/tp.log" 2>&1
  grep -E "train step" "$OUT/tp.log"
  grep -A12 "^shape" "$OUT/tp.log" || tail -20 "$OUT/tp.log"
  rm -rf /tmp/tpcheck
fi
