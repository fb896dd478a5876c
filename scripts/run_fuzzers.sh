#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each tests/fuzz/NAME_fuzzer.cc
# for a bounded time (FUZZ_SECONDS each, default 60). Exits non-zero on the
# first crash, leak or sanitizer report; the crashing input is left in the
# build folder. Corpora live in $BUILD_DIR/corpus/NAME (never in the repo).
#   scripts/run_fuzzers.sh [NAME_fuzzer ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-2}"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSHARDLM_FUZZ=ON -DSHARDLM_BUILD_TESTS=OFF -DSHARDLM_BUILD_BENCH=OFF >/dev/null
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/*_fuzzer.cc; do targets+=("$(basename "$src" .cc)"); done
fi
cmake --build "$BUILD_DIR" -j"$JOBS" --target "${targets[@]}"
for name in "${targets[@]}"; do
  corpus="$BUILD_DIR/corpus/$name"
  mkdir -p "$corpus"
  echo "== $name: ${SECONDS_EACH}s"
  (cd "$BUILD_DIR" && "./tests/fuzz/$name" -max_total_time="$SECONDS_EACH" -max_len=4096 \
     -print_final_stats=1 "corpus/$name")
done
echo "all fuzzers ran clean"
