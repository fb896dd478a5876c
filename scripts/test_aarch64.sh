#!/usr/bin/env bash
# The aarch64 stage of scripts/test.sh: cross-builds the kernel (tensor
# format, quant models), forward, golden and tokenizer tests and `shardlm` into build-aarch64/ with Debian's
# g++-aarch64-linux-gnu (scripts/toolchains/aarch64-linux-gnu.cmake) and runs
# them under qemu-user (scripts/toolchains/qemu-aarch64.sh):
#   1. QEMU_CPU=max: NEON with the ARMv8.2 dot product (the sdot kernels);
#   2. QEMU_CPU=cortex-a72 (ARMv8.0, no dot product): the kernel tests again,
#      on the plain NEON kernels;
#   3. `shardlm generate` of stories260K, greedy: must print llama.cpp's text
#      (../shared/golden/stories260K.once.json).
#
#   scripts/test_aarch64.sh        (JOBS=2 by default; SHARDLM_TEST_DATA as test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export SHARDLM_TEST_DATA="$(cd "${SHARDLM_TEST_DATA:-../shared}" && pwd)"
JOBS="${JOBS:-2}"
BUILD=build-aarch64
QEMU=scripts/toolchains/qemu-aarch64.sh
# The cross build of the libraries from scratch takes a while: ccache if there.
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=scripts/toolchains/aarch64-linux-gnu.cmake \
  -DSHARDLM_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target tensor_format_test quant_models_test forward_test golden_test \
  tokenizer_test shardlm

# Only the binaries built above (ctest lists the others as not built); of the
# goldens (minutes each under qemu for the larger models) the `once` prompt of
# stories260K and of every nano quant type: one real model per kernel family.
SUITES='(^|/)(TensorFormatTest|QuantModelsTest|Fp16Test|ForwardTest|BatchedTest|TokenizerVectorsTest|TokenizerCoreTest|BpeTokenizerTest|StreamDetokenizerTest|Utf8Test)\.'
SUITES+='|GoldenTest\.[A-Za-z]+/(stories260K|nano_[a-z0-9_]+)_once$'
echo "--- aarch64 under qemu, cpu max (NEON + dot product)"
(cd "$BUILD" && QEMU_CPU=max SHARDLM_EXPECT_DOTPROD=1 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 -R "$SUITES")
echo "--- aarch64 under qemu, cpu cortex-a72 (NEON without the dot product): kernel tests"
(cd "$BUILD" && QEMU_CPU=cortex-a72 SHARDLM_EXPECT_DOTPROD=0 \
  ctest --output-on-failure -j"$JOBS" --timeout 900 -R '^(TensorFormatTest|QuantModelsTest|Fp16Test)\.')

echo "--- aarch64 shardlm generate under qemu (stories260K, greedy)"
golden="$SHARDLM_TEST_DATA/golden/stories260K.once.json"
expected=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["greedy_text"])' "$golden")
n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["greedy_tokens"]))' "$golden")
got=$(QEMU_CPU=max timeout 300 "$QEMU" "$BUILD/bin/shardlm" generate \
  --model "$SHARDLM_TEST_DATA/models/stories260K.gguf" --prompt "Once upon a time" -n "$n" --temp 0)
echo "$got"
if [[ "$got" != *"$expected"* ]]; then
  echo "aarch64 shardlm generate: expected llama.cpp's greedy text: $expected" >&2
  exit 1
fi
echo "aarch64: all passed"
