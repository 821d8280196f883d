#!/usr/bin/env bash
# Builds GPU test/bench binaries here and copies them, with the non-system
# shared libraries they need (Abseil, spdlog, fmt, gRPC from Debian),
# into .devbin/cuda/ so a device call can carry them (carry: [".devbin/cuda"]).
# The GPU machine has CUDA but no Bazel; run binaries there with
#   LD_LIBRARY_PATH=.devbin/cuda/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib
# Usage: scripts/gpu/stage.sh //worker/cuda:norm_test //bench/cuda:tpserve_bench ...
# With TPSERVE_BUNDLE=1 the result is packed into .devbin/cuda/bundle.tar.xz
# (about 3 MB instead of 20+: the carried tree must stay under 64 MiB); unpack
# it on the device with `tar -C /tmp/d -xJf .devbin/cuda/bundle.tar.xz` and
# use /tmp/d/cuda/{bin,lib}.
set -euo pipefail
cd "$(dirname "$0")/../.."
OB=${TPSERVE_OUTPUT_BASE:-/root/.cache/bazel-ob/cuda}
# --symlink_prefix=/: leave the workspace's bazel-* links to the default output base
# (links into this one would break `bazel build //...` there).
bazel --output_base="$OB" build --symlink_prefix=/ "$@"
BIN=$(bazel --output_base="$OB" info bazel-bin 2>/dev/null)
bins=()
for t in "$@"; do
  pkg=${t#//}; pkg=${pkg%%:*}; name=${t##*:}
  bins+=("$BIN/$pkg/$name")
done
# tools/device_bundle.sh copies them with the libraries they need (not glibc's,
# libstdc++'s or CUDA's: the GPU machine has its own) and strips them.
rm -rf .devbin/cuda
if [[ "${TPSERVE_BUNDLE:-0}" == 1 ]]; then
  BUNDLE=.devbin/cuda/bundle.tar.xz PREFIX=cuda tools/device_bundle.sh "${bins[@]}"
else
  STAGE_DIR=.devbin/cuda tools/device_bundle.sh "${bins[@]}"
fi
