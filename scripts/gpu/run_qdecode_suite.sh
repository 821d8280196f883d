#!/usr/bin/env bash
# One device call for the quantized decode GEMVs (issue 20): their GPU tests,
# then batch-1/32 decode of the 7B shape in bf16, FP8, int4 (AWQ layout) and
# int8 (GPTQ layout) with the default kernels, then int4 at batch 1 with
# TPSERVE_GEMV_INT_MMA=0 (gemv_int.cu's scalar kernels) and TPSERVE_GEMV_INT_TILES=0
# (row-major int4 codes for the tensor-core kernel) for a
# same-call A/B. Parts are skipped once BUDGET seconds
# (default 200) have passed.
# usage: scripts/gpu/run_qdecode_suite.sh OUTDIR BUNDLE
#   BUNDLE: tools/device_bundle.sh of tpserve_bench and the *_test binaries.
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1 BUNDLE=$2 BUDGET=${BUDGET:-200}
unpack_bundle /tmp/qd "$BUNDLE" "$OUT" || exit 1
CFG=tests/fixtures/shapes/qwen2-7b-instruct/config.json
date -u
echo "=== GPU tests"
SHOW_SECONDS=1 run_gpu_tests 60 "$OUT" $B/{gemv_int,gemm_fp8,gemm,cuda_weights_int}_test
TPSERVE_GEMV_INT_MMA=0 timeout 60 $B/gemv_int_test > "$OUT/gemv_int_test_scalar.log" 2>&1
echo "gemv_int_test (scalar) rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/gemv_int_test_scalar.log" | tr '\n' ' ')"
bench() {  # name, batches, quantization, env...
  local name=$1 batch=$2 q=$3
  shift 3
  local kv r
  r=$(for kv in "$@"; do export "${kv?}"; done
      run_bench "$OUT/bench_${name}_$q.log" 60 "$B/tpserve_bench" --config $CFG --batch "$batch" --prompt 128 \
        --new 64 --quantization "$q")
  echo "$name $q $r (${SECONDS}s)"
}
echo "=== decode, default kernels"
for q in auto fp8 awq gptq-int8; do
  left 30 "default $q" && bench new 1,32 $q
done
echo "=== A/B at batch 1: TPSERVE_GEMV_INT_TILES=0 (row-major codes), TPSERVE_GEMV_INT_MMA=0 (scalar kernels)"
for v in TILES=0 MMA=0; do
  for q in awq gptq; do
    left 25 "$v $q" && bench "${v%%=*}_off" 1 $q "TPSERVE_GEMV_INT_$v"
  done
done
echo "=== default again (batch 1, spread)"
for q in auto awq gptq-int8 gptq; do
  left 25 "again $q" && bench again 1 $q
done
left 60 "cuda_backend_test" && { timeout $((BUDGET - SECONDS - 5)) $B/cuda_backend_test > "$OUT/cuda_backend_test.log" 2>&1
  echo "cuda_backend_test rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/cuda_backend_test.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED' "$OUT/cuda_backend_test.log" | head -6; }
echo "=== done in $SECONDS s"
