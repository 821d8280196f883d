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
# A second one whose every reply is a Qwen tool call, for tool_calls.fake.mjs.
tool_port=$((port + 1))
"$bin" --port "$tool_port" --reply $'<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' &
tool_pid=$!
trap 'kill $pid $tool_pid' EXIT
for p in "$port" "$tool_port"; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$p/health" >/dev/null && break
    sleep 0.2
  done
done
cd tests/node
[ -d node_modules ] || npm ci
TPSERVE_BASE_URL="http://127.0.0.1:$port/v1" node --test
TPSERVE_TOOL_BASE_URL="http://127.0.0.1:$tool_port/v1" node --test tool_calls.fake.mjs
