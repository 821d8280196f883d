#!/usr/bin/env bash
# Everything issue 9 measures on one GPU, in one device call: the kernel and
# backend tests, the 7B-shape benchmark (with and without programmatic
# dependent launch), the HF eager baseline in the same call, and the
# real-shape comparison with HF transformers.
# usage: [COMPARE_CHECKPOINT=random|trained|both] [SKIP_BENCH=1] [SKIP_COMPARE=1] scripts/gpu/run_cuda_suite.sh OUTDIR
#   (bundle from: TPSERVE_BUNDLE=1 scripts/gpu/stage.sh <the targets in docs/performance.md>)
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
mkdir -p /tmp/d "$OUT" && tar -C /tmp/d -xJf .devbin/cuda/bundle.tar.xz
export LD_LIBRARY_PATH=/tmp/d/cuda/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
SHAPE=tests/fixtures/shapes/qwen2-7b-instruct/config.json
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
echo "=== GPU tests"
run_gpu_tests 150 /tmp/d $(for t in norm rope_cache activation attention attention_prefill gemm sampler block_table \
  cuda_backend; do echo /tmp/d/cuda/bin/${t}_test; done)
if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
  for pdl in 1 0; do  # with and without programmatic dependent launch
    echo "=== tpserve_bench, TPSERVE_PDL=$pdl"
    TPSERVE_PDL=$pdl timeout 240 /tmp/d/cuda/bin/tpserve_bench --config $SHAPE --batch 1,8,32,128 --prompt 512 \
      --new 128 --prefill 512,2048 > "$OUT/bench_pdl$pdl.txt" 2>&1
    grep -v "^\[" "$OUT/bench_pdl$pdl.txt" | tail -12
  done
  echo "=== HF eager baseline"
  timeout 240 python3 bench/hf_baseline.py --config $SHAPE --batch 1,8,32,128 --prompt 512 --new 128 \
    --out "$OUT/hf.json" > /tmp/d/hf.log 2>&1
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["copy_TBps"], [(x["batch"], round(x["decode_tok_s"], 1)) for x in r["runs"]])' \
    "$OUT/hf.json" || tail -5 /tmp/d/hf.log
fi
if [[ "${SKIP_COMPARE:-0}" != 1 ]]; then
  echo "=== real shapes against HF"
  timeout 400 python3 scripts/gpu/compare_hf.py --bin /tmp/d/cuda/bin/tpserve_gpu_check --skip-tiny \
    --checkpoint "${COMPARE_CHECKPOINT:-random}" --out "$OUT/compare.json" > "$OUT/compare.log" 2>&1
  grep -E '^\{"shape"|train step' "$OUT/compare.log" || tail -20 "$OUT/compare.log"
fi
