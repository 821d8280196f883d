#!/usr/bin/env bash
# One device call for the fused int4 / int8 GEMM (gemm_int.cu; issue 20): its tests and the int GEMV's, then
# tpserve_bench on the 7B shape in AWQ int4 and GPTQ int8 at the batch sizes the fused GEMM takes (and
# prefill), each once with it and once with TPSERVE_GEMM_INT=0 (dequantize + cuBLASLt: the path it replaces),
# the same binary in the same call; bf16 and FP8 beside them; then where the GEMM and the GEMV cross
# (TPSERVE_GEMM_INT_ROWS_MIN moved below the GEMV's rows), and AWQ without split k (TPSERVE_GEMM_INT_SPLITS=1). Parts are skipped once BUDGET seconds (default
# 420) have passed.
# usage: scripts/gpu/run_gemm_int_suite.sh OUTDIR BUNDLE
#   BUNDLE: tools/device_bundle.sh of tpserve_bench, gemm_int_test, gemv_int_test and cuda_backend_test.
#   TESTS: which of those tests to run (default all three, by their names less _test); BATCHES: the
#   decode batch sizes of the with / without rows (default 1,64,128,256); BOUNDS=b1,b2,.. (BOUNDS8 for
#   int8): instead of the rest, the fused GEMM forced on against it off at those batch sizes.
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1 BUNDLE=$2 BUDGET=${BUDGET:-420}
unpack_bundle /tmp/gi "$BUNDLE" "$OUT" || exit 1
C7=tests/fixtures/shapes/qwen2-7b-instruct/config.json
BATCHES=${BATCHES:-1,64,128,256}
bench() {  # label, batches, quantization [, VAR=VALUE...]
  local label=$1 batches=$2 q=$3
  shift 3
  echo "$label $(env "$@" bash -c 'source scripts/gpu/gpu_tests.sh; run_bench "$0" 150 "$1"/tpserve_bench \
    --config "$2" --batch "$3" --prompt 128 --new 32 --prefill 512 --quantization "$4"' \
    "$OUT/bench_$label.log" "$B" "$C7" "$batches" "$q") (${SECONDS}s)"
}
date -u
TESTS=${TESTS:-gemm_int gemv_int cuda_backend}
SHOW_SECONDS=1 run_gpu_tests 200 "$OUT" $(for t in $TESTS; do echo "$B/${t}_test"; done)
if [[ " $TESTS " == *" cuda_backend "* ]]; then
  # The fixtures' prompts through the fused GEMM (AWQ, GPTQ int8) against their HF goldens: from 3 rows on.
  mkdir -p "$OUT/gemm_from_3"
  (export TPSERVE_GEMM_INT_ROWS_MIN=3; SHOW_SECONDS=1 run_gpu_tests 200 "$OUT/gemm_from_3" $B/cuda_backend_test)
fi
if [ -n "${BOUNDS:-}" ]; then
  # Where the fused GEMM stops paying: it forced on (any row count) against dequantize + cuBLASLt, at the
  # batch sizes BOUNDS (int4) and BOUNDS8 (int8) list.
  left 40 bounds && bench awq_bounds_fused "$BOUNDS" awq TPSERVE_GEMM_INT_ROWS_MAX=4096
  left 40 bounds && bench awq_bounds_dequant "$BOUNDS" awq TPSERVE_GEMM_INT=0
  left 40 bounds && bench int8_bounds_fused "${BOUNDS8:-$BOUNDS}" gptq-int8 TPSERVE_GEMM_INT_ROWS_MAX=4096
  left 40 bounds && bench int8_bounds_dequant "${BOUNDS8:-$BOUNDS}" gptq-int8 TPSERVE_GEMM_INT=0
  echo "=== done in $SECONDS s"
  exit 0
fi
for q in awq gptq-int8; do
  left 40 "$q" && bench "${q}_fused" "$BATCHES" "$q"
  left 40 "$q" && bench "${q}_dequant" "$BATCHES" "$q" TPSERVE_GEMM_INT=0
done
left 40 "awq split" && bench awq_unsplit "$BATCHES" awq TPSERVE_GEMM_INT_SPLITS=1
left 40 bf16 && bench bf16 "$BATCHES" auto
left 40 fp8 && bench fp8 "$BATCHES" fp8
for q in awq gptq-int8; do
  left 40 "$q cross" && bench "${q}_cross_gemm" 16,32,48 "$q" TPSERVE_GEMM_INT_ROWS_MIN=9
  left 40 "$q cross" && bench "${q}_cross_gemv" 16,32,48 "$q"
done
left 40 "awq 512" && bench awq_512_fused 512 awq TPSERVE_GEMM_INT_ROWS_MAX=4096
left 40 "awq 512" && bench awq_512_dequant 512 awq TPSERVE_GEMM_INT=0
echo "=== done in $SECONDS s"
