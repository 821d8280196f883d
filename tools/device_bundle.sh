#!/usr/bin/env bash
# Packs built binaries and the non-system shared libraries they need (gRPC,
# protobuf, abseil, yaml-cpp, spdlog, httplib, ...) into .devbin/bundle.tar.xz
# for the GPU machine, which has CUDA but none of those. libc, libstdc++ and the
# CUDA libraries are left out: the GPU machine has its own (newer) ones.
#
# usage: tools/device_bundle.sh BINARY...      (run from the repo root)
#        BUNDLE=.devbin/NAME.tar.xz tools/device_bundle.sh ...  (another output,
#        so that several engineers can stage at once)
#        PREFIX=cuda: the archive holds cuda/bin and cuda/lib (scripts/gpu's layout)
#        STAGE_DIR=DIR: leave DIR/bin and DIR/lib unpacked instead of an archive
# On the GPU machine:  mkdir -p /tmp/tp && tar -xJf .devbin/bundle.tar.xz -C /tmp/tp
#                      export LD_LIBRARY_PATH=/tmp/tp/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
set -euo pipefail
bundle=${BUNDLE:-.devbin/bundle.tar.xz}
root=$(mktemp -d)
out=$root${PREFIX:+/$PREFIX}
mkdir -p "$out/bin" "$out/lib"
for bin in "$@"; do
  cp -L "$bin" "$out/bin/"
  ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libstdc++*|libgcc_s*|libpthread*|libdl.so*|librt.so*|libresolv*|ld-linux*) ;;
      libcuda*|libcudart*|libcublas*|libnccl*|libnvidia*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
done
# Symbols are not needed there, and the bundle travels with the working tree
# under the device tool's 64 MiB limit.
find "$out" -type f -exec chmod u+w {} + -exec strip --strip-unneeded {} \; 2>/dev/null || true
if [ -n "${STAGE_DIR:-}" ]; then
  rm -rf "$STAGE_DIR" && mkdir -p "$(dirname "$STAGE_DIR")" && mv "$out" "$STAGE_DIR"
  rm -rf "$root"
  du -sh "$STAGE_DIR"
  exit 0
fi
mkdir -p "$(dirname "$bundle")"
tar -cJf "$bundle" -C "$root" .
rm -rf "$root"
ls -la "$bundle"
