#!/usr/bin/env bash
# Builds shardlm (Release) and runs the whole test suite with ctest.
# The shared test data comes from SHARDLM_TEST_DATA (default: ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --if-missing
# Made absolute here because ctest runs the tests from the build folder.
export SHARDLM_TEST_DATA="$(cd "${SHARDLM_TEST_DATA:-../shared}" && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-2}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$JOBS" --timeout 600 "$@"
