#!/usr/bin/env bash
# --kv-cache-dtype fp8 (issue 20) in one device call: the FP8-KV kernel tests
# and the bf16 attention tests beside them, tpserve_bench at the 7B shape with
# --kv-cache-dtype auto and fp8 (decode batch 1/32/128, 512- and 8192-token
# prefill, the KV blocks each gets), then top-1 agreement of fp8-KV against
# bf16-KV logits on the trained 0.5B checkpoint (scripts/gpu/tp_check.py
# --kv-cache-dtype fp8). A summary table last.
# usage: scripts/gpu/run_kvfp8_suite.sh OUTDIR BUNDLE [TP_CHECK_DIR]
#   BUNDLE: tools/device_bundle.sh's tar of the *_test binaries, tpserve_bench and tpserve_tp_check.
#   TP_CHECK_DIR: where tp_check.py and checkpoints.py are (default scripts/gpu).
set -u
OUT=$1
BUNDLE=$2
PY=${3:-scripts/gpu}
mkdir -p /tmp/k "$OUT" && tar -C /tmp/k -xJf "$BUNDLE"
B=/tmp/k/bin
export LD_LIBRARY_PATH=/tmp/k/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
L=/tmp/k/logs && mkdir -p $L
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
echo "=== GPU tests (in parallel)"
for t in $(ls $B | grep '_test$'); do
  (timeout 45 $B/$t > $L/$t.log 2>&1; echo "rc=$?" >> $L/$t.log) &
done
wait
for t in $(ls $B | grep '_test$'); do
  echo "$t $(tail -1 $L/$t.log) $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' $L/$t.log | tr '\n' ' ')"
  grep -E '^\[  FAILED|Failure' $L/$t.log | head -4
done
echo "=== tpserve_bench, 7B shape"
for kv in auto fp8; do
  timeout 40 $B/tpserve_bench --config tests/fixtures/shapes/qwen2-7b-instruct/config.json --batch 1,32,128 \
    --prompt 512 --new 64 --prefill 512,8192 --kv-cache-dtype $kv > $L/bench_$kv.log 2>&1
  echo "--- kv $kv rc=$?"; grep -v '^\[\|^20[0-9][0-9]-\|^JSON' $L/bench_$kv.log | tail -8
done
echo "=== fidelity: fp8 KV against bf16 KV (trained 0.5B)"
timeout ${FIDELITY_S:-90} python3 $PY/tp_check.py --bin $B/tpserve_tp_check --tp 1 --shapes qwen2-0.5b-instruct \
  --checkpoint trained --kv-cache-dtype fp8 --out $L/fidelity.json > $L/fidelity.log 2>&1
echo "fidelity rc=$?"; grep -A4 '^shape' $L/fidelity.log
echo "=== summary"
python3 - "$L" <<'PY'
import json, os, sys
for kv in ("auto", "fp8"):
    f = os.path.join(sys.argv[1], f"bench_{kv}.log")
    js = [l[5:] for l in open(f) if l.startswith("JSON ")] if os.path.exists(f) else []
    if not js:
        print(f"kv {kv}: no result"); continue
    j = json.loads(js[-1])
    dec = " ".join(f"b{d['batch']}={d['decode_tok_s']:.0f}" for d in j["decode"])
    pre = " ".join(f"{p['prompt']}={p['ms']:.2f}ms" for p in j["prefill"])
    print(f"kv {kv:<5} blocks {j['kv_blocks']} x {j['kv_block_bytes'] // 1024} KiB  decode tok/s {dec}  prefill {pre}")
PY
tar -czf "$OUT/kvfp8_logs.tgz" -C /tmp/k logs
