#!/usr/bin/env bash
# Runs the openai-SDK tests against //gateway/testing:test_gateway (the real
# gateway in front of a FAKE router), for gateway work without a model.
# The end-to-end CI step instead sets TPSERVE_BASE_URL to a `tpserve serve`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
port="${PORT:-18123}"
(cd "$root" && bazel ${BAZEL_STARTUP:-} build //gateway/testing:test_gateway)
bin="$(cd "$root" && bazel ${BAZEL_STARTUP:-} info bazel-bin)/gateway/testing/test_gateway"
cd "$root"
"$bin" --port "$port" &
pid=$!
trap 'kill $pid' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.2
done
cd tests/node
[ -d node_modules ] || npm ci
TPSERVE_BASE_URL="http://127.0.0.1:$port/v1" node --test
