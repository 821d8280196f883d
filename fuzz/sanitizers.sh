#!/usr/bin/env bash
# Runs the CPU tests under a sanitizer build: `asan` (ASan + UBSan, every
# test not tagged gpu) or `tsan` (ThreadSanitizer; the router and gateway
# tests by default). Extra arguments replace the target patterns. The
# configs are in .bazelrc; docs/fuzzing.md says what they cover.
# Last line: "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

config=${1:?usage: fuzz/sanitizers.sh asan|tsan [targets...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  case "$config" in
    asan) targets=(//...) ;;
    tsan) targets=(//router/... //gateway/...) ;;
    *) echo "unknown config $config"; echo "0 passed, 1 failed"; exit 1 ;;
  esac
fi

# TSan needs the absolute path of its suppressions (tests run elsewhere).
extra=()
if [ "$config" = tsan ]; then
  extra=(--test_env=TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$(pwd)/fuzz/tsan.supp")
fi
log=$(mktemp)
# shellcheck disable=SC2086
bazel test --config="$config" --test_output=errors --test_summary=short "${extra[@]}" ${SANITIZER_BAZEL_FLAGS:-} -- \
  "${targets[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE)' "$log")
# A build failure runs no test at all: count it.
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$rc" = 0 ]
