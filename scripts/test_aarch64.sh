#!/usr/bin/env bash
# The aarch64 stage of scripts/test.sh: cross-builds the kernel, tokenizer,
# forward and golden tests and `shardlm` into build-aarch64/ with Debian's
# g++-aarch64-linux-gnu (scripts/toolchains/aarch64-linux-gnu.cmake) and runs
# them under qemu-user (scripts/toolchains/qemu-aarch64.sh):
#   1. QEMU_CPU=max: NEON with the ARMv8.2 dot product (the sdot kernels):
#      kernel and tokenizer tests, forward_test, and golden_test's cases for
#      stories260K and the nano Q4_0 / Q8_0 / Q4_K_M models (the other
#      goldens take too long emulated; the x86 stages run them all);
#      then `shardlm generate` of the embedded stories260K, 200 greedy tokens,
#      must print llama2.c's text (tests/data/stories260K.expected_greedy.txt);
#   2. QEMU_CPU=cortex-a72 (ARMv8.0, no dot product): the kernel tests and the
#      same `shardlm generate`, on the plain NEON kernels.
# forward/golden need the test data; the generate check does not (the model
# is embedded in the binary).
#
#   scripts/test_aarch64.sh        (JOBS=2 by default; SHARDLM_TEST_DATA as test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# Without the test data (scripts/test.sh unsets SHARDLM_TEST_DATA on a bare
# clone) the tests labelled `data` are left out and listed.
LABEL_ARGS=()
if [ -n "${SHARDLM_TEST_DATA:-}" ] || [ -d ../shared ]; then
  export SHARDLM_TEST_DATA="$(cd "${SHARDLM_TEST_DATA:-../shared}" && pwd)"
else
  LABEL_ARGS=(-LE '^data$')
fi
JOBS="${JOBS:-2}"
BUILD=build-aarch64
# The cross build of the libraries from scratch takes a while: ccache if there.
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=scripts/toolchains/aarch64-linux-gnu.cmake \
  -DSHARDLM_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target tensor_format_test quant_models_test tokenizer_test \
  forward_test golden_test shardlm

# Only the binaries built above (ctest lists the others as not built).
KERNELS='^(TensorFormatTest|QuantModelsTest|Fp16Test)\.'
TOKENIZER='^(TokenizerVectorsTest|TokenizerCoreTest|BpeTokenizerTest|StreamDetokenizerTest|Utf8Test)\.'
FORWARD='^(ForwardTest|Types/BatchedTest)\.'
GOLDEN='^AllGoldens/GoldenTest\..*/(stories260K|nano_q4_0|nano_q8_0|nano_q4_k_m)_'
QEMU="$(pwd)/scripts/toolchains/qemu-aarch64.sh"
GENERATE_TMP=$(mktemp -d)
trap 'rm -rf "$GENERATE_TMP"' EXIT

# `shardlm generate` of the embedded stories260K (written once to a fresh
# SHARDLM_CACHE_DIR), greedy, 200 tokens after BOS: llama2.c's text. The
# timeout bounds a hang (a few seconds here, more on a loaded CI machine).
# RUNNER: how to start an aarch64 program (default: qemu-aarch64.sh).
RUNNER=("$QEMU")
check_generate() {
  local expected got rc=0
  expected="$(cat tests/data/stories260K.expected_greedy.txt)"
  got=$(SHARDLM_CACHE_DIR="$GENERATE_TMP/cache" timeout 300 \
          "${RUNNER[@]}" "$BUILD/bin/shardlm" generate --prompt "" -n 200 --temp 0 \
          2>"$GENERATE_TMP/generate.err") || rc=$?
  if [ "$rc" != 0 ]; then
    cat "$GENERATE_TMP/generate.err"
    echo "FAIL: aarch64 shardlm generate (QEMU_CPU=$QEMU_CPU) exited with $rc (124: timed out)"
    return 1
  fi
  if [ "$got" != "$expected" ]; then
    diff <(echo "$expected") <(echo "$got") || true
    echo "FAIL: aarch64 shardlm generate (QEMU_CPU=$QEMU_CPU) printed other text than llama2.c's"
    return 1
  fi
  echo "shardlm generate (QEMU_CPU=$QEMU_CPU): stories260K's expected greedy text, $(grep -o 'generation: .*' "$GENERATE_TMP/generate.err")"
}

echo "--- aarch64 under qemu, cpu max (NEON + dot product)"
(cd "$BUILD" && QEMU_CPU=max SHARDLM_EXPECT_DOTPROD=1 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 "${LABEL_ARGS[@]}" \
    -R "$KERNELS|$TOKENIZER|$FORWARD|$GOLDEN")
# The issue's command as a user types it: qemu with only QEMU_LD_PREFIX (the
# binaries' RUNPATH pairs the cross loader with its own libc).
RUNNER=(env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu QEMU_CPU=max qemu-aarch64-static)
QEMU_CPU=max check_generate
RUNNER=("$QEMU")
echo "--- aarch64 under qemu, cpu cortex-a72 (NEON without the dot product): kernel tests, generate"
(cd "$BUILD" && QEMU_CPU=cortex-a72 SHARDLM_EXPECT_DOTPROD=0 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 "${LABEL_ARGS[@]}" -R "$KERNELS")
QEMU_CPU=cortex-a72 check_generate
if [ "${#LABEL_ARGS[@]}" -gt 0 ]; then
  echo "SKIPPED (no test data): the aarch64 tests that need it:"
  (cd "$BUILD" && ctest -N -L '^data$' -R "$KERNELS|$TOKENIZER|$FORWARD|$GOLDEN" |
    sed -n 's/^ *Test *#[0-9]*: /  /p')
fi
echo "aarch64: all passed"
