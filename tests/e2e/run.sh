#!/usr/bin/env bash
# End-to-end tests of the whole cluster through `tpserve serve`, with the
# official OpenAI SDK. Usage: tests/e2e/run.sh PATH/TO/tpserve
# Ends with "N passed, M failed".
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${1:-${TPSERVE_BIN:-}}"
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "usage: $0 PATH/TO/tpserve"
  echo "0 passed, 1 failed"
  exit 1
fi
export TPSERVE_BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || {
  echo "npm ci failed in tests/e2e"; echo "0 passed, 1 failed"; exit 1; }

files=("$HERE"/*.test.mjs)
# The gateway's own SDK tests run against a server started here.
NODE_DIR="$HERE/../node"
log=$(mktemp)
node --test --test-concurrency=1 --test-reporter=tap "${files[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

if [ -f "$NODE_DIR/package.json" ] && ls "$NODE_DIR"/*.test.mjs >/dev/null 2>&1; then
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  out=$(mktemp)
  "$TPSERVE_BIN" serve --device cpu --port "$port" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do grep -q "ready in" "$out" && break; sleep 0.2; done
  TPSERVE_BASE_URL="http://127.0.0.1:$port/v1" node --test --test-concurrency=1 \
    --test-reporter=tap "$NODE_DIR"/*.test.mjs 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$out"
fi

# node's TAP reporter ends each run with "# pass N" and "# fail M".
passed=$(awk '/^# pass /{s+=$3} END{print s+0}' "$log")
failed=$(awk '/^# fail /{s+=$3} END{print s+0}' "$log")
rm -f "$log"
[ "$failed" = 0 ] && [ "$rc" = 0 ] || { [ "$failed" = 0 ] && failed=1; }
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
