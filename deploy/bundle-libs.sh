#!/usr/bin/env bash
# Copies the shared libraries BINARY links (gRPC, protobuf, Abseil, yaml-cpp,
# spdlog, fmt, cpp-httplib, OpenSSL, ...) into DIR, leaving out what the CUDA
# runtime image already provides: glibc, libstdc++/libgcc, the CUDA toolkit
# libraries, NCCL and the driver (which the NVIDIA container runtime mounts).
# Usage: bundle-libs.sh BINARY DIR
set -euo pipefail
if [[ $# -ne 2 || ! -x $1 ]]; then
  echo "usage: $0 BINARY DIR (BINARY must be an executable file)" >&2
  exit 2
fi
binary=$1
out=$2
deps=$(ldd "$binary")
if grep -q 'not found' <<<"$deps"; then
  echo "$0: unresolved libraries:" >&2
  grep 'not found' <<<"$deps" >&2
  exit 1
fi
mkdir -p "$out"
count=0
while read -r name arrow path _; do
  [[ $arrow == "=>" && $path == /* ]] || continue
  case $name in
    ld-linux* | libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | \
      libresolv.so.* | libutil.so.* | libstdc++.so.* | libgcc_s.so.* | libcuda.so.* | \
      libnccl.so.*) continue ;;
  esac
  case $path in /usr/local/cuda*) continue ;; esac
  cp -L "$path" "$out/$name"
  count=$((count + 1))
done <<<"$deps"
echo "$0: copied $count libraries into $out"
