#!/usr/bin/env bash
# Runs the bundled fuzz targets (tools/fuzz_bundle.sh) on a many-core machine
# without Bazel (the GPU machine: 16+ cores), all targets at once, for a fixed
# time, and prints a table of executions, exec/s and findings.
#
#   bash .devbin/fuzz/run_fuzz.sh 540                         # every target, cores split by cost
#   bash .devbin/fuzz/run_fuzz.sh 300 verify=8 jinja=8        # chosen targets and process counts
#
# Each target runs as libFuzzer -jobs=K -workers=K: K independent fuzzing
# processes sharing one corpus folder (each picks up the others' new inputs),
# each ending with -print_final_stats. Unlike -fork=K, whose parent only
# counts the jobs it merged before the time ran out (jobs still running are
# waited for but not counted), every process's executions are counted here:
# the sum of its stat::number_of_executed_units (or of its last "#N" status
# line if it died without final stats).
#
# Bundle: FUZZ_BUNDLE (default: bundle.tar.xz beside this script); unpacked
# into FUZZ_ROOT (default /tmp/tpfuzz). Results go to $OUT (default
# $FUZZ_ROOT/out): fuzz_summary.txt (the table), fuzz_logs.tar.gz (the end
# of every process's log), fuzz_crashes.tar.gz (crash-*, leak-*, timeout-*,
# oom-* inputs; only when there are some) and fuzz_corpus.tar.gz (the grown
# corpora, to seed the next run with FUZZ_SEED_CORPUS=that file).
# Exit status: 0 when no target found anything and every process ran.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-540}
shift || true
bundle=${FUZZ_BUNDLE:-$here/bundle.tar.xz}
root=${FUZZ_ROOT:-/tmp/tpfuzz}
out=${OUT:-$root/out}
ALL=(request_parser tokenizer jinja safetensors verify detokenizer)
# Relative cost of one execution, so that the targets reach similar counts:
# the inverse of each one's exec/s on one core (2026-11-30, 20 s from the seed
# corpora: verify 840, jinja 1,970, request_parser 3,670, safetensors 4,050,
# tokenizer 8,020, detokenizer 12,260).
declare -A COST=([verify]=15 [jinja]=6 [request_parser]=3 [safetensors]=3 [tokenizer]=2 [detokenizer]=1)

rm -rf "$root" && mkdir -p "$root" "$out"
tar -xJf "$bundle" -C "$root" || { echo "cannot unpack $bundle"; exit 1; }
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The targets find tests/fixtures/... under TPSERVE_WORKSPACE (fuzz/fuzz_util.cc).
export TPSERVE_WORKSPACE=$root
if [ -n "${FUZZ_SEED_CORPUS:-}" ]; then tar -xzf "$FUZZ_SEED_CORPUS" -C "$root"; fi

# Targets and process counts: from the arguments, else every target with the
# machine's cores split by COST (at least one each).
declare -A JOBS=()
targets=()
if [ $# -gt 0 ]; then
  for arg in "$@"; do
    t=${arg%%=*}
    targets+=("$t")
    JOBS[$t]=$([ "$arg" != "$t" ] && echo "${arg#*=}" || echo 1)
  done
else
  cores=$(nproc)
  total=0
  for t in "${ALL[@]}"; do total=$((total + COST[$t])); done
  for t in "${ALL[@]}"; do
    targets+=("$t")
    k=$((cores * COST[$t] / total))
    JOBS[$t]=$((k > 0 ? k : 1))
  done
fi

for t in "${targets[@]}"; do
  [ -x "$root/bin/${t}_fuzzer" ] || { echo "no fuzz target $t in the bundle"; exit 1; }
  wd="$root/work/$t"
  mkdir -p "$wd/corpus" "$wd/artifacts"
  k=${JOBS[$t]}
  echo "=== $t: $k processes, ${seconds}s"
  # -jobs/-workers write each process's output to fuzz-<i>.log in the
  # current folder. The seed corpus is read-only input; new inputs go to
  # corpus/. `timeout` is a backstop should a process ignore
  # -max_total_time (a hung input is killed after -timeout=10 s anyway).
  (
    cd "$wd" &&
      timeout -k 10 $((seconds + 120)) "$root/bin/${t}_fuzzer" \
        -jobs="$k" -workers="$k" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$wd/artifacts/" corpus "$root/corpus/$t" >main.log 2>&1
  ) &
done
wait

status=0
{
  printf '%-16s %5s %6s %14s %10s %8s %8s\n' target procs secs executions exec/s findings corpus
  for t in "${targets[@]}"; do
    wd="$root/work/$t"
    execs=0
    died=0
    for log in "$wd"/fuzz-*.log; do
      [ -f "$log" ] || continue
      n=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
      if [ -z "$n" ]; then
        # No final stats: the process was killed; count what it last reported.
        n=$(grep -aoE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
        died=$((died + 1))
      fi
      execs=$((execs + ${n:-0}))
    done
    findings=$(find "$wd/artifacts" -type f | wc -l)
    corpus=$(find "$wd/corpus" -type f | wc -l)
    printf '%-16s %5s %6s %14s %10s %8s %8s\n' "$t" "${JOBS[$t]}" "$seconds" "$execs" \
      $((execs / seconds)) "$findings" "$corpus"
    if [ "$findings" != 0 ] || [ "$died" != 0 ]; then
      status=1
      [ "$died" = 0 ] || echo "  $t: $died process(es) ended without final stats (see fuzz_logs.tar.gz)"
      grep -ahE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:|invariant broken' \
        "$wd"/fuzz-*.log | sort | uniq -c | head -n 5
    fi
  done
} >"$out/fuzz_summary.txt"
cat "$out/fuzz_summary.txt"

# Logs grow with every new input: keep each process's last 300 lines (its
# final stats, and the report of anything it found).
mkdir -p "$root/logs"
for log in "$root"/work/*/fuzz-*.log; do
  [ -f "$log" ] || continue
  t=$(basename "$(dirname "$log")")
  tail -n 300 "$log" >"$root/logs/$t-$(basename "$log")"
done
(cd "$root" && tar -czf "$out/fuzz_logs.tar.gz" logs)
(cd "$root/work" && tar -czf "$out/fuzz_corpus.tar.gz" --transform 's,^\./\([^/]*\)/corpus,./corpus/\1,' ./*/corpus)
if [ -n "$(find "$root/work" -path '*/artifacts/*' -type f | head -n 1)" ]; then
  (cd "$root/work" && tar -czf "$out/fuzz_crashes.tar.gz" ./*/artifacts)
  echo "crash inputs: fuzz_crashes.tar.gz"
fi
exit $status
