#!/usr/bin/env bash
# The aarch64 stage of scripts/test.sh: cross-builds the kernel tests
# (tensor_format_test, quant_models_test) and the tokenizer tests into
# build-aarch64/ with Debian's g++-aarch64-linux-gnu
# (scripts/toolchains/aarch64-linux-gnu.cmake) and runs them under qemu-user
# (scripts/toolchains/qemu-aarch64.sh):
#   1. QEMU_CPU=max: NEON with the ARMv8.2 dot product (the sdot kernels),
#      kernel and tokenizer tests;
#   2. QEMU_CPU=cortex-a72 (ARMv8.0, no dot product): the kernel tests again,
#      on the plain NEON kernels.
# Not yet here (see docs/ARCHITECTURE.md, aarch64): forward_test, golden_test
# and `shardlm generate` under qemu.
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
cmake --build "$BUILD" -j"$JOBS" --target tensor_format_test quant_models_test tokenizer_test

# Only the binaries built above (ctest lists the others as not built).
KERNELS='^(TensorFormatTest|QuantModelsTest|Fp16Test)\.'
TOKENIZER='^(TokenizerVectorsTest|TokenizerCoreTest|BpeTokenizerTest|StreamDetokenizerTest|Utf8Test)\.'
echo "--- aarch64 under qemu, cpu max (NEON + dot product)"
(cd "$BUILD" && QEMU_CPU=max SHARDLM_EXPECT_DOTPROD=1 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 "${LABEL_ARGS[@]}" -R "$KERNELS|$TOKENIZER")
echo "--- aarch64 under qemu, cpu cortex-a72 (NEON without the dot product): kernel tests"
(cd "$BUILD" && QEMU_CPU=cortex-a72 SHARDLM_EXPECT_DOTPROD=0 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 "${LABEL_ARGS[@]}" -R "$KERNELS")
if [ "${#LABEL_ARGS[@]}" -gt 0 ]; then
  echo "SKIPPED (no test data): the aarch64 tests that need it:"
  (cd "$BUILD" && ctest -N -L '^data$' -R "$KERNELS|$TOKENIZER" | sed -n 's/^ *Test *#[0-9]*: /  /p')
fi
echo "aarch64: all passed"
