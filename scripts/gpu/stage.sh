#!/usr/bin/env bash
# Builds GPU test/bench binaries here and copies them, with the non-system
# shared libraries they need (Abseil, spdlog, fmt, libstdc++ from Debian),
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
rm -rf .devbin/cuda && mkdir -p .devbin/cuda/bin .devbin/cuda/lib
for t in "$@"; do
  pkg=${t#//}; pkg=${pkg%%:*}; name=${t##*:}
  cp "$BIN/$pkg/$name" .devbin/cuda/bin/
  # Copy every resolved library except glibc's own and CUDA's.
  ldd "$BIN/$pkg/$name" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda*|libcublas*|libnccl*) ;;
      *) cp -L -n "$lib" .devbin/cuda/lib/ ;;
    esac
  done
done
if [[ "${TPSERVE_BUNDLE:-0}" == 1 ]]; then
  tar -C .devbin -cJf /tmp/tpserve_cuda_bundle.tar.xz cuda
  rm -rf .devbin/cuda && mkdir -p .devbin/cuda
  mv /tmp/tpserve_cuda_bundle.tar.xz .devbin/cuda/bundle.tar.xz
fi
du -sh .devbin/cuda
