#!/usr/bin/env bash
# One device call for the int4/int8 decode GEMVs (issue 20): their GPU tests
# (default kernels, and int8 on the tensor cores), the SASS instruction mix of
# their main kernels (scripts/gpu/sass_mix.py; they are issue-bound, so the
# count per byte is the figure to cut), then batch-1 decode of the 7B shape
# with the new binary and a base binary alternating, bf16 and FP8 beside them.
# Parts are skipped once BUDGET seconds (default 420) have passed.
# usage: scripts/gpu/run_qtile_suite.sh OUTDIR BUNDLE BASE_BUNDLE
#   BUNDLE: tools/device_bundle.sh of tpserve_bench, gemv_int_test,
#   cuda_weights_int_test and cuda_backend_test; BASE_BUNDLE: the same built
#   from the commit to compare with (only its tpserve_bench is run).
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1 BUNDLE=$2 BASE=$3 BUDGET=${BUDGET:-420}
unpack_bundle /tmp/qt_base "$BASE" "$OUT" > /dev/null || exit 1
BASE_B=$B
unpack_bundle /tmp/qt "$BUNDLE" "$OUT" || exit 1
CFG=tests/fixtures/shapes/qwen2-7b-instruct/config.json
tests_with() {  # label (default or VAR=VALUE), test binaries
  local name=$1 log
  shift
  (if [ "$name" != default ]; then export "${name?}"; fi
   for bin in "$@"; do
     log=$OUT/$(basename "$bin")_${name//[^A-Za-z0-9]/_}.log
     timeout 120 "$bin" > "$log" 2>&1
     echo "$(basename "$bin") [$name] rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$log" | tr '\n' ' ') (${SECONDS}s)"
     grep -E '^\[  FAILED|Failure' "$log" | head -6
   done)
}
bench() {  # label, binary dir, batches, quantization, env...
  local name=$1 dir=$2 batch=$3 q=$4 kv r
  shift 4
  r=$(for kv in "$@"; do export "${kv?}"; done
      run_bench "$OUT/bench_${name}_$q.log" 60 "$dir/tpserve_bench" --config $CFG --batch "$batch" --prompt 128 \
        --new 64 --quantization "$q")
  echo "$name $q $r (${SECONDS}s)"
}
date -u
echo "=== GPU tests"
tests_with default $B/{gemv_int,cuda_weights_int,cuda_backend}_test
tests_with TPSERVE_GEMV_INT_MMA=0 $B/{gemv_int,cuda_backend}_test
echo "=== SASS instruction mix of the GEMV kernels (new binary; listings in OUT/*.sass)"
CUOBJDUMP=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2> /dev/null)
# (mangled-name prefixes: GemvIntAsyncKernel<BITS, M, kSilu, W, ...>, GemvInt(SiluMul)Kernel<BITS, M>)
for pair in "gemv_Uint GemvIntAsyncKernelILi4ELi1ELb1ELi4E" "gemv_Uint GemvIntAsyncKernelILi4ELi1ELb0ELi8E" \
    "gemv_Uint GemvIntSiluMulKernelILi8ELi1EE" "gemv_Uint GemvIntKernelILi8ELi1EE"; do
  set -- $pair
  [ -n "$CUOBJDUMP" ] || break
  "$CUOBJDUMP" -sass "$B/../lib/libworker_Scuda_Slib$1.so" |
    awk -v n="$2" '/Function :/ { p = index($0, n) > 0 } p' > "$OUT/$2.sass"
  python3 "$(dirname "$0")/sass_mix.py" "$OUT/$2.sass" "$2"
done
echo "=== decode, 7B shape, batch 1 (tok/s, ms a step)"
left 30 bf16 && bench bf16 $B 1 auto
left 30 fp8 && bench fp8 $B 1 fp8
for round in 1 2; do
  left 30 "awq $round" && bench "base$round" $BASE_B 1 awq
  left 30 "awq $round" && bench "new$round" $B 1 awq
  left 30 "int8 $round" && bench "base$round" $BASE_B 1 gptq-int8
  left 30 "int8 $round" && bench "new$round" $B 1 gptq-int8
done
left 30 "batch 32" && bench new32 $B 32 awq
left 30 "batch 32" && bench new32 $B 32 gptq-int8
left 30 bf16 && bench bf16_again $B 1 auto
if [ "${NCU:-0}" = 1 ]; then
  echo "=== ncu (clocks left alone): the GEMV kernels of one decode layer, new binary"
  NCU_BIN=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2> /dev/null)
  for q in awq gptq-int8; do
    for env in ""; do
      [ "$q" = awq ] && [ -n "$env" ] && continue
      left 40 "ncu $q $env" || continue
      (if [ -n "$env" ]; then export "${env?}"; fi
       timeout 60 "$NCU_BIN" --clock-control none -k regex:GemvInt --launch-skip 300 --launch-count 4 \
         --section SpeedOfLight --section InstructionStats --section Occupancy --section LaunchStats \
         "$B/tpserve_bench" --config $CFG --batch 1 --prompt 128 --new 8 --quantization $q > "$OUT/ncu.txt" 2>&1
       echo "--- $q $env rc=$?"
       grep -E "^  [a-z].*Kernel|Duration|DRAM Throughput|Executed Instructions  |Registers Per|Achieved Occupancy" \
         "$OUT/ncu.txt" | sed -E 's/\(const __nv_bfloat16.*\) \(/ (/; s/, Context.*//')
    done
  done
  rm -f "$OUT/ncu.txt"
fi
echo "=== done in $SECONDS s"
