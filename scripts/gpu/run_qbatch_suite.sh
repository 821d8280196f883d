#!/usr/bin/env bash
# One device call for int4 decode across batch sizes (issue 20): the int GEMV tests, then tpserve_bench at
# batch 1-32 (and 64, where cuBLASLt takes over) on the 7B shape in AWQ and GPTQ int4 with bf16 and FP8
# beside them, then the 72B shape (it fits one H200 in int4, FP8 and int8, not in bf16). Parts are skipped once
# BUDGET seconds (default 300) have passed.
# usage: scripts/gpu/run_qbatch_suite.sh OUTDIR BUNDLE [BASE_BUNDLE]
#   BUNDLE: tools/device_bundle.sh of tpserve_bench, gemv_int_test and cuda_backend_test; BASE_BUNDLE (its
#   tpserve_bench only is run): the int rows again with the binary to compare with, in the same call.
#   EXTRA_ENV=VAR=VALUE: the int8 and AWQ rows once more with that variable set (an A/B switch).
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1 BUNDLE=$2 BASE=${3:-} BUDGET=${BUDGET:-300}
BB=
if [ -n "$BASE" ]; then unpack_bundle /tmp/qb_base "$BASE" "$OUT" > /dev/null || exit 1; BB=$B; fi
unpack_bundle /tmp/qb "$BUNDLE" "$OUT" || exit 1
C7=tests/fixtures/shapes/qwen2-7b-instruct/config.json
C72=tests/fixtures/shapes/qwen2-72b-instruct/config.json
bench() {  # label, config, batches, new tokens, quantization [, binary directory]
  echo "$1 $(run_bench "$OUT/bench_$1.log" 150 "${6:-$B}/tpserve_bench" --config "$2" --batch "$3" --prompt 128 \
    --new "$4" --quantization "$5") (${SECONDS}s)"
}
date -u
SHOW_SECONDS=1 run_gpu_tests 200 "$OUT" $B/{gemv_int,cuda_backend}_test
TPSERVE_GEMV_INT_MMA=0 SHOW_SECONDS=1 run_gpu_tests 200 "$OUT/" $B/gemv_int_test
if [ -n "${EXTRA_ENV:-}" ]; then
  mkdir -p "$OUT/extra" && (export "${EXTRA_ENV?}"; SHOW_SECONDS=1 run_gpu_tests 200 "$OUT/extra" $B/{gemv_int,cuda_backend}_test)
fi
left 40 7b && bench 7b_bf16 $C7 1,8,16,32 64 auto
left 40 7b && bench 7b_fp8 $C7 1,8,16,32 64 fp8
left 40 7b && bench 7b_awq $C7 1,2,4,8,12,16,32,64 64 awq
left 40 7b && bench 7b_gptq $C7 1,8,16,32 64 gptq
left 40 7b && bench 7b_int8 $C7 1,4,8,16,32 64 gptq-int8
if [ -n "${EXTRA_ENV:-}" ]; then
  left 40 extra && (export "${EXTRA_ENV?}"; bench 7b_int8_extra $C7 1,4,8,16,32 64 gptq-int8)
  left 40 extra && (export "${EXTRA_ENV?}"; bench 7b_awq_extra $C7 1,8,32 64 awq)
fi
if [ -n "$BB" ]; then
  left 40 base && bench 7b_awq_base $C7 1,8,16,32 64 awq "$BB"
  left 40 base && bench 7b_int8_base $C7 1,4,8,16,32 64 gptq-int8 "$BB"
fi
left 60 72b && bench 72b_awq $C72 1,8,16,32 32 awq
left 60 72b && bench 72b_fp8 $C72 1,8,16,32 32 fp8
left 60 72b && bench 72b_int8 $C72 1,8,16,32 32 gptq-int8
echo "=== done in $SECONDS s"
