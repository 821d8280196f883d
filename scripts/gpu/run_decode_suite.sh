#!/usr/bin/env bash
# Decode-step kernels before/after in one device call: the GPU tests of the
# new build, then tpserve_bench (7B shape, one GPU) with the base build and
# the new one back to back, bf16 and FP8, batch 1/32/128 after 512-token
# prompts plus batch-1 decode at 32k context; the new build also with
# VARIANT (an environment setting; default TPSERVE_DECODE_MAX_SPLITS=32, the
# old cap on decode splits), reported as new32.
# usage: [VARIANT=NAME=VALUE] scripts/gpu/run_decode_suite.sh OUTDIR NEW_BUNDLE BASE_BUNDLE
#   NEW_BUNDLE: bin/ (tpserve_bench, *_test) + lib/; BASE_BUNDLE: bin/tpserve_bench_base.
set -u
source "$(dirname "$0")/gpu_tests.sh"
VARIANT=${VARIANT:-TPSERVE_DECODE_MAX_SPLITS=32}
echo "new32 runs with $VARIANT"
OUT=$1
unpack_bundle /tmp/ds "$2" "$OUT" && tar -C /tmp/ds -xJf "$3" || exit 1  # the base bundle beside the new one
echo "=== GPU tests"
run_gpu_tests 300 "$OUT" $B/*_test
CFG=tests/fixtures/shapes/qwen2-7b-instruct/config.json
bench() {  # name, binary, then flags
  local name=$1 bin=$2; shift 2
  echo "--- $name $(run_bench "$OUT/bench_$name.log" 200 "$bin" --config $CFG "$@")"
}
for q in auto fp8; do
  F=(--batch 1,32,128 --prompt 512 --new 128 --prefill 512 --quantization $q)
  bench base_$q $B/tpserve_bench_base "${F[@]}"
  bench new_$q $B/tpserve_bench "${F[@]}"
  (export "$VARIANT"; bench new32_$q $B/tpserve_bench "${F[@]}")
  bench base2_$q $B/tpserve_bench_base "${F[@]}"
done
echo "=== batch-1 decode at 32k context (bf16)"
L=(--batch 1 --prompt 64 --new 64 --long-context 32768)
for v in base new new32 base2; do
  bin=$B/tpserve_bench; [[ $v == base* ]] && bin=$B/tpserve_bench_base
  env $([[ $v == new32 ]] && echo "$VARIANT") timeout 200 $bin --config $CFG "${L[@]}" \
    > $OUT/long_$v.log 2>&1
  echo "long $v rc=$? $(grep -E 'context:' $OUT/long_$v.log)"
done
