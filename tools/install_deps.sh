#!/usr/bin/env bash
# Installs what tpserve builds and tests with, from Debian 12 packages only.
# Idempotent; needs root (or sudo). CUDA (nvcc, cuBLAS, NCCL) is expected in
# /usr/local/cuda: GPU code is compiled when it is there.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  build-essential
  pkg-config
  protobuf-compiler
  protobuf-compiler-grpc
  libprotobuf-dev
  libgrpc++-dev
  libabsl-dev
  libyaml-cpp-dev
  libcpp-httplib-dev
  libcurl4-openssl-dev
  nlohmann-json3-dev
  libgtest-dev
  libgmock-dev
  libspdlog-dev
  libfmt-dev
  libssl-dev
  curl
  procps
  python3
  # fuzz/ and the sanitizer builds: clang, its sanitizer runtimes, libFuzzer.
  clang
  libclang-rt-14-dev
  libfuzzer-14-dev
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js (for the OpenAI SDK tests): the machine's own when present (it may
# bundle npm, which then conflicts with Debian's npm package).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "warning: /usr/local/cuda/bin/nvcc not found; the CUDA targets cannot be built" >&2
fi
