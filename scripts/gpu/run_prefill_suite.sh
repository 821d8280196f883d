#!/usr/bin/env bash
# Everything issue 24's prefill work measures on one GPU, in one device call
# (about 4 minutes on an H200): the attention / GEMM / backend tests, the
# kernel benchmark (both prefill kernels, long-context decode splits, GEMM
# algorithm search), tpserve_bench's prefill of one prompt at 1k-32k tokens
# (whole and chunked) and 32k-context decode, and HF transformers + SDPA on
# the same prompts in the same call; a comparison table last.
# usage: scripts/gpu/run_prefill_suite.sh OUTDIR [BUNDLE]
#   BUNDLE (default .devbin/cuda/bundle.tar.xz) from
#   TPSERVE_BUNDLE=1 scripts/gpu/stage.sh //worker/cuda:attention_prefill_test //worker/cuda:attention_test \
#       //worker/cuda:gemm_test //worker/cuda:cuda_backend_test //bench/cuda:tpserve_prefill_kernel_bench \
#       //bench/cuda:tpserve_bench
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
BUNDLE=${2:-.devbin/cuda/bundle.tar.xz}
mkdir -p /tmp/d "$OUT" && tar -C /tmp/d -xJf "$BUNDLE"
B=/tmp/d/cuda/bin
export LD_LIBRARY_PATH=/tmp/d/cuda/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
SHAPE=tests/fixtures/shapes/qwen2-7b-instruct/config.json
LENGTHS=${LENGTHS:-1024,4096,16384,32768}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
CUOBJDUMP=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
echo "=== HGMMA (wgmma) instructions in attention_prefill_test: $($CUOBJDUMP --dump-sass $B/attention_prefill_test 2>/dev/null | grep -c HGMMA)"
echo "=== GPU tests"
FAIL_PATTERN='^\[  FAILED|Failure|error' run_gpu_tests 180 "$OUT" $B/{attention_prefill,attention,gemm,cuda_backend}_test
echo "=== compute-sanitizer memcheck, 7B-shape mixed step, both kernels"
timeout 90 compute-sanitizer --tool memcheck $B/attention_prefill_test \
  --gtest_filter='Shapes/PrefillTest.MixedStepWithCachedPrefixes/12:Shapes/PrefillTest.MixedStepWithCachedPrefixes/13' > "$OUT/memcheck.log" 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$OUT/memcheck.log" | tr '\n' ' ')"
echo "=== kernel benchmark"
timeout 150 $B/tpserve_prefill_kernel_bench --lengths $LENGTHS --chunk 4096 > "$OUT/kernel_bench.txt" 2>&1
grep -v '^JSON' "$OUT/kernel_bench.txt" | tail -45
echo "=== tpserve_bench"
timeout 240 $B/tpserve_bench --config $SHAPE --batch 1 --prompt 512 --new 64 --prefill $LENGTHS \
  --chunks 2048,4096,8192,16384 --long-context 32768 > "$OUT/tpserve_bench.txt" 2>&1
grep -v '^\[' "$OUT/tpserve_bench.txt" | grep -v '^JSON' | tail -16
echo "=== HF transformers + SDPA"
timeout 300 python3 bench/hf_prefill.py --config $SHAPE --lengths $LENGTHS --out "$OUT/hf_prefill.json" \
  > "$OUT/hf_prefill.log" 2>&1 || tail -20 "$OUT/hf_prefill.log"
grep -E 'HF sdpa|attention_kernels|flash|fmha|cudnn' "$OUT/hf_prefill.log" | head -12
python3 scripts/gpu/prefill_vs_hf.py "$OUT/tpserve_bench.txt" "$OUT/hf_prefill.json"
