#!/usr/bin/env bash
# Quantized formats' fidelity on the trained checkpoints (issue 20's acceptance) in one device call:
# scripts/gpu/tp_check.py at TP=1 on the 0.5B then the 7B shape, each trained on the successor-map task, with
# bf16 (the baseline), --quantization fp8, GPTQ int8, an FP8 KV cache, AWQ, GPTQ int4 and GPTQ int4 with
# desc_act (the last four from the reference quantizer, group size 128), each against bf16 tpserve.
# A time budget keeps the call inside its limit: no new run starts after BUDGET_S - 25 s, the 7B shape
# starts only with SHAPE_MIN_S left, and the summary table is printed from the JSON even if the run was cut.
# usage: scripts/gpu/run_qfid_suite.sh OUTDIR BUNDLE [PY_DIR]
#   BUNDLE: tools/device_bundle.sh's tar of tpserve_tp_check. PY_DIR: where tp_check.py, checkpoints.py,
#   quant_ckpt.py and quant_ref.py are (default scripts/gpu).
#   Checkpoint: TRAIN_STEPS (per shape, default 300,150), TRAIN_LEN (160: the chains cover the 32-token
#   prompts and 128 generated tokens), TRAIN_BATCH (16). TRAIN_LEN=64 TRAIN_BATCH=32 TRAIN_STEPS=300 is the
#   checkpoint of the earlier FP8 / FP8-KV measurements.
set -u
OUT=$1
BUNDLE=$2
PY=${3:-scripts/gpu}
BUDGET_S=${BUDGET_S:-240}
mkdir -p /tmp/q "$OUT" && tar -C /tmp/q -xJf "$BUNDLE"
export LD_LIBRARY_PATH=/tmp/q/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout "$BUDGET_S" python3 "$PY/tp_check.py" --bin /tmp/q/bin/tpserve_tp_check --tp 1 \
  --shapes "${SHAPES:-qwen2-0.5b-instruct,qwen2-7b-instruct}" --checkpoint trained \
  --train-steps "${TRAIN_STEPS:-300,150}" --train-len "${TRAIN_LEN:-160}" --train-batch "${TRAIN_BATCH:-16}" \
  --quantization "${FORMATS:-fp8,gptq-int8,fp8kv,awq,gptq-int4,gptq-int4-act}" \
  --budget-s $((BUDGET_S - 25)) --shape-min-s "${SHAPE_MIN_S:-110}" \
  --workdir /tmp/qfid --out "$OUT/qfid.json" > "$OUT/qfid.log" 2>&1
rc=$?
grep -v '^\[\|^20[0-9][0-9]-\|^I[0-9]\{4\}\|^W[0-9]\{4\}' "$OUT/qfid.log" | tail -60
echo "tp_check rc=$rc"
if [[ $rc -ne 0 && -s "$OUT/qfid.json" ]]; then
  echo "=== summary from $OUT/qfid.json (the run was cut)"
  python3 - "$OUT/qfid.json" "$PY" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
import tp_check
r = json.load(open(sys.argv[1]))
tp_check.header()
for s in r["shapes"]:
    for v in s["vs_tp1"]:
        tp_check.print_row(s, v)
    print(f"  ({s['shape']}: {s.get('train_steps')} steps of {s.get('train_batch')} x {s.get('train_len')}, "
          f"final loss {s.get('train_final_loss')}, train {s.get('train_s')} s, setup {s.get('setup_s')} s)")
PY
fi
