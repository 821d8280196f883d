#!/usr/bin/env bash
# CI stage: the GPU code of every nvcc object and of the tpserve binary is
# exactly tools/cuda.bzl's CUDA_ARCHS (machine code for each GPU generation in
# docs/gpus.md, PTX for the newest), so a missing arch fails CI instead of an
# A800 at start-up. Compiling them in the build already proved that every .cu
# compiles for each arch.
# usage: tools/check_cuda_archs.sh [path/to/tpserve]   (default: bazel-bin/cli/tpserve)
# Last line: "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-bazel-bin/cli/tpserve}
OBJ_DIR=$(dirname "$(dirname "$BIN")")/worker/cuda
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

# The list as the build uses it; a --define=cuda_archs build is not what CI
# checks.
# Codes as one sorted line, so the order nvcc writes them in does not matter.
codes() { tr ' ' '\n' | sed '/^$/d' | sort | xargs; }
want=$(sed -nE 's/^CUDA_ARCHS = \[(.*)\]/\1/p' tools/cuda.bzl | tr -d '"' | tr ',' ' ' | codes)
if [ -z "$want" ]; then
  bad "no CUDA_ARCHS line in tools/cuda.bzl"
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "expected GPU code: $want"

# Every nvcc object: one fat binary with exactly the expected codes.
shopt -s nullglob
objs=("$OBJ_DIR"/*.o)
if [ ${#objs[@]} -eq 0 ]; then
  bad "no nvcc objects under $OBJ_DIR (build //worker/cuda/... first)"
fi
for o in "${objs[@]}"; do
  got=$(python3 tools/fatbin_archs.py "$o")
  if [ "$(echo "$got" | wc -l)" = 1 ] && [ "$(echo "${got#*: 0: }" | codes)" = "$want" ]; then
    ok "$(basename "$o"): $want"
  else
    bad "$(basename "$o"): got '$got'"
  fi
done

# The binary: one such fat binary per linked .cu file, and no other code.
if [ ! -f "$BIN" ]; then
  bad "$BIN not found"
else
  listing=$(python3 tools/fatbin_archs.py "$BIN" | while read -r _ _ rest; do echo "$rest" | codes; done)
  total=$(echo "$listing" | grep -c .)
  match=$(echo "$listing" | grep -cx "$want")
  if [ "$total" -gt 0 ] && [ "$total" = "$match" ]; then
    ok "$(basename "$BIN"): all $total fat binaries carry $want"
  else
    bad "$(basename "$BIN"): $match of $total fat binaries carry exactly '$want':"
    echo "$listing" | grep -vx "$want" | sort | uniq -c | head -5
  fi
  # cuobjdump (CUDA's own reader; on GPU machines, not in CI) must agree.
  if command -v cuobjdump >/dev/null; then
    elfs=$(cuobjdump --list-elf "$BIN" 2>/dev/null | grep -oE 'sm_[0-9]+a?' | sort | uniq -c | xargs)
    echo "cuobjdump --list-elf: $elfs"
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
