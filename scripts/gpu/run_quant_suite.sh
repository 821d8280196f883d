#!/usr/bin/env bash
# Issue 20's FP8 measurements in one device call: the FP8 kernel and weight
# tests, tpserve_bench bf16 beside --quantization fp8 (7B shape, one GPU; and
# the 72B shape at TP=2 when two GPUs are visible), and FP8 fidelity against
# bf16 on trained checkpoints (scripts/gpu/tp_check.py --quantization fp8).
# A summary table last.
# usage: scripts/gpu/run_quant_suite.sh OUTDIR BUNDLE
#   BUNDLE: an xz tar of bin/ (fp8_quant_test gemm_fp8_test gemm_test memory_fit_test cuda_backend_test
#   tpserve_bench tpserve_tp_check, any extra *_test) and lib/ (their non-system libraries).
#   SKIP_TP2=1 leaves out the 72B TP=2 pair; TP_SHAPES (default qwen2-0.5b-instruct) and TP_SIZES
#   (default 1, or 1,2 with two GPUs) pick the fidelity runs.
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
BUNDLE=$2
mkdir -p /tmp/q "$OUT" && tar -C /tmp/q -xJf "$BUNDLE"
B=$(dirname "$(find /tmp/q -name tpserve_bench -type f | head -1)")
export LD_LIBRARY_PATH=$B/../lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
L=/tmp/q/logs && mkdir -p $L
GPUS=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
echo "=== GPU tests"
run_gpu_tests 240 $L $B/*_test
bench() {  # name, then tpserve_bench flags
  local name=$1; shift
  timeout 200 $B/tpserve_bench "$@" > $L/bench_$name.log 2>&1
  echo "--- $name rc=$?"; grep -v '^\[\|^20[0-9][0-9]-' $L/bench_$name.log | grep -v '^JSON' | tail -9
}
echo "=== tpserve_bench, 7B shape, one GPU"
for q in auto fp8; do
  bench 7b_$q --config tests/fixtures/shapes/qwen2-7b-instruct/config.json --batch 1,32,128 --prompt 512 \
    --new 128 --prefill 512,2048 --quantization $q
done
if [[ $GPUS -ge 2 && "${SKIP_TP2:-0}" != 1 ]]; then
  echo "=== tpserve_bench, 72B shape, TP=2"
  for q in auto fp8; do
    bench 72b_tp2_$q --config tests/fixtures/shapes/qwen2-72b-instruct/config.json --tp 2 --batch 1,32 \
      --prompt 512 --new 64 --prefill 512 --quantization $q
  done
fi
echo "=== FP8 fidelity against bf16 (trained checkpoints)"
SIZES=${TP_SIZES:-$([[ $GPUS -ge 2 ]] && echo 1,2 || echo 1)}
timeout 300 python3 scripts/gpu/tp_check.py --bin $B/tpserve_tp_check --tp $SIZES \
  --shapes ${TP_SHAPES:-qwen2-0.5b-instruct} --checkpoint trained --quantization fp8 --out $L/fidelity.json \
  > $L/fidelity.log 2>&1
echo "fidelity rc=$?"; grep -A12 '^shape' $L/fidelity.log
echo "=== summary (decode tok/s, prefill ms)"
python3 - "$L" <<'PY'
import json, glob, os, sys
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.log"))):
    js = [l[5:] for l in open(f) if l.startswith("JSON ")]
    if not js:
        print(f"{os.path.basename(f)}: no result"); continue
    j = json.loads(js[-1])
    dec = " ".join(f"b{d['batch']}={d['decode_tok_s']:.0f}" for d in j["decode"])
    pre = " ".join(f"{p['prompt']}={p['ms']:.1f}ms" for p in j["prefill"])
    print(f"{os.path.basename(f)[6:-4]:<16} tp={j.get('tp',1)} {j['weight_bytes']/2**30:6.2f} GiB/GPU  {dec}  prefill {pre}"
          f"  batch1 {j['batch1_roofline_pct']:.1f}% of roofline")
PY
cp $L/bench_*.log $L/fidelity.json "$OUT"/ 2>/dev/null
tar -czf "$OUT/quant_logs.tgz" -C /tmp/q logs
