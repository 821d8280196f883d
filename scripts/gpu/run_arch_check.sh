#!/usr/bin/env bash
# The Ampere code path on a Hopper (issue 18), in one device call: every GPU
# test and the 7B-shape benchmark from a build that carries only compute_80
# PTX, so the driver JIT-compiles the sm_80 code for the H200 and nothing
# Hopper-specific runs; then, for comparison in the same call, the benchmark
# of the default build (sm_90a machine code).
# usage: scripts/gpu/run_arch_check.sh DIR OUTDIR
#   DIR holds ptx80.tar.xz (tests + tpserve_bench, built with
#   --define=cuda_archs=compute_80), default.tar.xz (tpserve_bench, default
#   archs) and fatbin_archs.py; make them with TPSERVE_BUNDLE=1
#   scripts/gpu/stage.sh (docs/gpus.md has the commands).
set -u
source "$(dirname "$0")/gpu_tests.sh"
DIR=$1
OUT=$2
mkdir -p /tmp/ptx80 /tmp/default "$OUT"
tar -C /tmp/ptx80 -xJf "$DIR/ptx80.tar.xz"
tar -C /tmp/default -xJf "$DIR/default.tar.xz"
export NCCL_NVLS_ENABLE=0
CUDA_LIBS=/usr/local/cuda/lib64:/usr/local/cuda/lib
SHAPE=tests/fixtures/shapes/qwen2-7b-instruct/config.json
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv,noheader
date -u +%FT%TZ

echo "=== GPU code in the binaries"
# fat binaries per set of codes (one fat binary per .cu file)
python3 "$DIR/fatbin_archs.py" /tmp/ptx80/cuda/bin/tpserve_bench /tmp/default/cuda/bin/tpserve_bench |
  sed -E 's/: [0-9]+: / /' | sort | uniq -c
# CUDA's own reader on the compute_80 build: PTX only, no machine code
cuobjdump --list-elf --list-ptx /tmp/ptx80/cuda/bin/tpserve_bench 2>&1 | awk '{print $1, $NF}' |
  sed -E 's/ .*\.(sm_[0-9a]+)\.(cubin|ptx)$/ \1/' | sort | uniq -c

echo "=== GPU tests, compute_80 PTX only (JIT on this GPU)"
export LD_LIBRARY_PATH=/tmp/ptx80/cuda/lib:$CUDA_LIBS
run_gpu_tests 90 "$OUT" $(for t in norm rope_cache activation attention gemm sampler memory_fit cuda_backend; do
  echo /tmp/ptx80/cuda/bin/${t}_test; done)
grep -m1 "cuda device" "$OUT/cuda_backend_test.log"

bench() {  # NAME DIR: the 7B shape at batch 1 and 32, a 2048-token prefill
  LD_LIBRARY_PATH=/tmp/$2/cuda/lib:$CUDA_LIBS timeout 100 /tmp/$2/cuda/bin/tpserve_bench --config $SHAPE \
    --batch 1,32 --prompt 512 --new 128 --prefill 2048 > "$OUT/bench_$1.txt" 2>&1
  echo "=== tpserve_bench, $1 (rc=$?)"
  grep -m1 "cuda device" "$OUT/bench_$1.txt"
  grep -v "^\[" "$OUT/bench_$1.txt" | tail -8
}
bench ptx80 ptx80
bench sm90a default
