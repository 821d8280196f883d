#!/usr/bin/env bash
# Builds the fuzz targets (--config=fuzz: clang, libFuzzer, ASan, UBSan) and
# runs each for a fixed time on its checked-in corpus (docs/fuzzing.md).
#
#   bash fuzz/run.sh                        # every target, 10 s each (the CI stage)
#   FUZZ_SECONDS=600 bash fuzz/run.sh jinja # one target for 10 minutes
#   FUZZ_RUNS=10000000 bash fuzz/run.sh tokenizer   # a fixed number of executions
#
# New inputs go to $FUZZ_WORK/<target> (default: a temporary folder), never
# into fuzz/corpus/. A crash leaves its input in that folder (crash-*, leak-*,
# timeout-*, oom-*): minimize it, fix the bug, and add it to fuzz/corpus/.
# Extra libFuzzer flags may be given in FUZZ_FLAGS. Last line:
# "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

ALL=(request_parser tokenizer jinja safetensors verify detokenizer)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
seconds=${FUZZ_SECONDS:-10}
runs=${FUZZ_RUNS:--1}
work_root=${FUZZ_WORK:-$(mktemp -d)}

if ! bazel build --config=fuzz ${FUZZ_BAZEL_FLAGS:-} //fuzz/...; then
  echo "fuzz build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)

passed=0
failed=0
for t in "${targets[@]}"; do
  work="$work_root/$t"
  mkdir -p "$work"
  log="$work_root/$t.log"
  echo "=== fuzz $t: ${seconds}s (runs ${runs})"
  # -max_total_time bounds the run; -timeout flags a single input slower than
  # 10 s as a hang; -rss_limit_mb flags runaway memory. Run from the
  # workspace root so the targets find tests/fixtures.
  # shellcheck disable=SC2086
  "$bin/fuzz/${t}_fuzzer" -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" ${FUZZ_FLAGS:-} "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  # The run's totals: executions, exec/s, coverage.
  grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "$log" |
    tr '\n' ' '
  grep -E '#[0-9]+ +(DONE|INITED)' "$log" | tail -n 1
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $t (exit $rc); the end of its log ($log):"
    tail -n 40 "$log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
