#!/bin/bash
# Builds a fully static tokenizer_bench into .devbin/text/ (git-ignored), for
# machines without Bazel or Debian's Abseil, such as the GPU machine:
#   bash bench/tokenizer/build_static.sh
# Run from the repo root. The Bazel target //bench/tokenizer:tokenizer_bench is
# the same program, dynamically linked.
set -euo pipefail
absl=$(sed -n '/^ABSL_LIBS = \[/,/^\]/p' third_party/BUILD.bazel | grep -o '"-[^"]*"' | tr -d '"' | tr '\n' ' ')
mkdir -p .devbin/text
# shellcheck disable=SC2086
g++ -std=c++20 -O2 -DNDEBUG -I. -static -o .devbin/text/tokenizer_bench \
  bench/tokenizer/tokenizer_bench.cc bench/tokenizer/corpus.cc \
  common/text/tokenizer.cc common/text/byte_level.cc common/text/pretokenizer.cc \
  common/text/unicode.cc common/text/unicode_tables.cc \
  -Wl,--start-group $absl -Wl,--end-group
echo "built .devbin/text/tokenizer_bench"
