#!/usr/bin/env bash
# Builds the six fuzz targets (--config=fuzz: clang, libFuzzer, ASan, UBSan)
# and packs them, the non-system shared libraries they need, their corpora
# and the fixture files they read into one archive for a machine without
# Bazel, with scripts/gpu/run_fuzz.sh beside it:
#
#   tools/fuzz_bundle.sh [DEST]     # DEST default: /work/main/.devbin/fuzz if it exists, else .devbin/fuzz
#   -> DEST/bundle.tar.xz, DEST/run_fuzz.sh
#
# On the other machine: bash DEST/run_fuzz.sh SECONDS (docs/fuzzing.md).
# As in tools/device_bundle.sh, glibc's libraries, libstdc++, libgcc and the
# CUDA driver libraries are left out (the target machine has its own). Extra
# Bazel flags: FUZZ_BAZEL_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

default_dest=.devbin/fuzz
[ -d /work/main/.devbin ] && default_dest=/work/main/.devbin/fuzz
dest=${1:-$default_dest}
TARGETS=(request_parser tokenizer jinja safetensors verify detokenizer)
# Fixture files the targets open (fuzz/fixture_tokenizer.cc, fuzz/jinja_fuzzer.cc).
FIXTURES=(tests/fixtures/tiny-qwen2-chat/tokenizer.json tests/fixtures/tiny-qwen2-chat/tokenizer_config.json)

labels=()
for t in "${TARGETS[@]}"; do labels+=("//fuzz:${t}_fuzzer"); done
# shellcheck disable=SC2086
bazel build --config=fuzz ${FUZZ_BAZEL_FLAGS:-} "${labels[@]}"
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/corpus"
for t in "${TARGETS[@]}"; do
  cp -L "$bin/fuzz/${t}_fuzzer" "$stage/bin/"
  cp -rL "fuzz/corpus/$t" "$stage/corpus/$t"
  ldd "$bin/fuzz/${t}_fuzzer" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libstdc++*|libgcc_s*|libpthread*|libdl.so*|librt.so*|libresolv*|ld-linux*) ;;
      libcuda*|libcublas*|libnccl*|libnvidia*) ;;
      *) cp -L -n "$lib" "$stage/lib/" ;;
    esac
  done
done
for f in "${FIXTURES[@]}"; do
  mkdir -p "$stage/$(dirname "$f")"
  cp -L "$f" "$stage/$f"
done

mkdir -p "$dest"
tar -cJf "$dest/bundle.tar.xz" -C "$stage" .
cp scripts/gpu/run_fuzz.sh "$dest/run_fuzz.sh"
size=$(stat -c %s "$dest/bundle.tar.xz")
ls -la "$dest"
# The device tool carries at most 64 MiB in all; stay well under.
if [ "$size" -gt $((30 << 20)) ]; then
  echo "bundle is $size bytes, over 30 MiB"
  exit 1
fi
