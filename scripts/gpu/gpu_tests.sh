# Sourced by the scripts/gpu suites: runs GoogleTest binaries one after the other and prints a line each.
#   run_gpu_tests SECONDS LOGDIR BINARY...
# For each binary: LOGDIR/<name>.log, then "<name> rc=<exit> <gtest's PASSED/FAILED/SKIPPED lines>" (plus
# " (<n>s)" with SHOW_SECONDS=1: seconds since the calling script started), and on failure up to 8 lines
# matching FAIL_PATTERN (default: failed tests and gtest's assertion text).
run_gpu_tests() {
  local secs=$1 dir=$2 bin name rc extra
  shift 2
  for bin in "$@"; do
    name=$(basename "$bin")
    [ -e "$bin" ] || { echo "$name: not in the bundle"; continue; }
    timeout "$secs" "$bin" > "$dir/$name.log" 2>&1
    rc=$?
    extra=""
    [ "${SHOW_SECONDS:-0}" = 1 ] && extra=" (${SECONDS}s)"
    echo "$name rc=$rc $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$dir/$name.log" | tr '\n' ' ')$extra"
    grep -E "${FAIL_PATTERN:-^\[  FAILED|Failure|Expected|Which is}" "$dir/$name.log" | head -8
  done
}

# Sourced likewise: runs a bench (tpserve_bench or another printing "decode batch" / "prefill" lines) into
# LOG and prints "rc=<exit> <those lines, ';'-separated on one line>".
#   run_bench LOG SECONDS COMMAND...
run_bench() {
  local log=$1 secs=$2 rc
  shift 2
  timeout "$secs" "$@" > "$log" 2>&1
  rc=$?
  echo "rc=$rc $(grep -E '^decode batch|^prefill' "$log" | tr -s ' ' | tr '\n' ';')"
}

# Sourced likewise: unpacks a tools/device_bundle.sh archive into DIR, makes OUTDIR, sets B=DIR/bin and the
# library path (and NCCL_NVLS_ENABLE=0, the device machines' rule), and prints the GPU's name and driver.
#   unpack_bundle DIR BUNDLE OUTDIR
unpack_bundle() {
  mkdir -p "$1" "$3" && tar -C "$1" -xJf "$2" || return 1
  B=$1/bin
  export LD_LIBRARY_PATH=$1/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
  export NCCL_NVLS_ENABLE=0
  nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | head -1
}

# Sourced likewise: true while more than SECONDS_NEEDED of the calling script's BUDGET (seconds) is left;
# otherwise prints "(skipped: PART, <n>s used)" and fails, so that `left 40 part && step` skips the step.
#   left SECONDS_NEEDED PART
left() { [ $((BUDGET - SECONDS)) -gt "$1" ] || { echo "(skipped: $2, ${SECONDS}s used)"; return 1; }; }
