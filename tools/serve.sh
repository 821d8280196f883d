#!/usr/bin/env bash
# One command from a fresh clone to a running server: installs the Debian
# packages, builds `tpserve`, and runs `tpserve serve` with the given flags
# (none: the embedded tiny chat model on CPU, port 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel build //cli:tpserve
exec "$(bazel info bazel-bin)/cli/tpserve" serve "$@"
