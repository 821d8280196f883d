#!/usr/bin/env bash
# Everything issue 10 measures, in one call on a 4-GPU machine: NCCL
# communicator test, TP=2/4 vs TP=1 on HF-saved random checkpoints, the
# roofline inputs, and the whole cluster (`tpserve serve`, 72B shape, dummy
# weights, TP=4) with a curl streaming chat and serve_bench.
# usage: scripts/gpu/run_tp_suite.sh OUTDIR   (bundle from tools/device_bundle.sh)
set -u
OUT=$1
mkdir -p /tmp/tp && tar -xJf .devbin/bundle.tar.xz -C /tmp/tp
export LD_LIBRARY_PATH=/tmp/tp/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "=== NCCL communicator test"
timeout 120 /tmp/tp/bin/nccl_communicator_test 2>&1 | tail -3
echo "=== TP vs TP=1 (HF-saved random checkpoints)"
timeout 300 python3 scripts/gpu/tp_check.py --bin /tmp/tp/bin/tpserve_tp_check --tp 1,2,4 \
  --out "$OUT/tp.json" > "$OUT/tp.log" 2>&1
grep -A8 "^shape" "$OUT/tp.log" || tail -20 "$OUT/tp.log"
rm -rf /tmp/tpcheck
echo "=== roofline inputs (72B shape, TP=4)"
timeout 120 python3 scripts/gpu/roofline.py --config tests/fixtures/shapes/qwen2-72b-instruct/config.json \
  --tp 4 --out "$OUT/roofline.json" 2>&1 | tail -1
echo "=== tpserve serve, 72B shape, dummy weights, TP=4"
timeout 420 bash scripts/gpu/serve_tp.sh /tmp/tp/bin/tpserve qwen2-72b-instruct 4 "$OUT" \
  --gpu-memory-utilization 0.9 --max-model-len 4096 --max-num-seqs 64
grep -E "KV|graph|ready|profil|memory" "$OUT/serve_qwen2-72b-instruct.log" | head -12
