#!/usr/bin/env bash
# The whole test suite, as CI runs it. Stages, each fatal on failure:
#   1. Release build (build/): every ctest test, including the 5-minute soak;
#   2. the libFuzzer targets (build-fuzz/, clang), FUZZ_SECONDS each (default 30);
#   3. ASan+UBSan build (build-asan/): every test but the soak;
#   4. TSan build (build-tsan/): the concurrency tests (engine, stage service,
#      pipeline, failover and chain binaries; only those are built);
#   then aarch64 (build-aarch64/, scripts/test_aarch64.sh): a cross build whose
#      kernel, tokenizer, forward and (some) golden tests and `shardlm
#      generate` run under qemu-user, with and without the dot-product extension.
#
#   scripts/test.sh           all four stages
#   scripts/test.sh --quick   stage 1 without the soak (while developing)
#
# The shared test data comes from SHARDLM_TEST_DATA (default: ../shared).
# Without ../shared (a bare clone; also when SHARDLM_TEST_DATA names ../shared,
# as the README's command does) every stage runs the tests that do not need it
# and prints "SKIPPED (no test data at ...)" with the list of those that do
# (ctest label `data`). Any other SHARDLM_TEST_DATA that does not exist is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --if-missing --aarch64
DEFAULT_DATA=../shared
DATA="${SHARDLM_TEST_DATA:-$DEFAULT_DATA}"
BARE=0
if [ -d "$DATA" ]; then
  # Made absolute here because ctest runs the tests from the build folder.
  export SHARDLM_TEST_DATA="$(cd "$DATA" && pwd)"
elif [ "$(realpath -m "$DATA")" = "$(realpath -m "$DEFAULT_DATA")" ]; then
  BARE=1
  DATA="$(realpath -m "$DATA")"
  unset SHARDLM_TEST_DATA
  echo "no test data at $DATA: running the tests that do not need it (those are listed as SKIPPED)"
else
  echo "SHARDLM_TEST_DATA=$DATA: no such folder (point it at the shared test data, or unset it" \
       "to run without it when $DEFAULT_DATA is missing)" >&2
  exit 2
fi
SKIPPED_LOG="$(mktemp)"
trap 'rm -f "$SKIPPED_LOG"' EXIT
JOBS="${JOBS:-2}"
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; fi
START=$(date +%s)

stage() { echo; echo "=== [$(( $(date +%s) - START )) s] $*"; }

# build DIR CMAKE_ARGS... -- CTEST_ARGS...: configures and builds DIR (only
# the targets in $TARGETS if set), then runs ctest there, leaving out the
# labels in $EXCLUDE (a space-separated list) and, on a bare clone, `data`;
# the `data` tests left out are printed in a SKIPPED block.
build_and_test() {
  local dir="$1"; shift
  local cmake_args=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
  shift
  cmake -S . -B "$dir" -G Ninja "${cmake_args[@]}" >/dev/null
  # shellcheck disable=SC2086 # TARGETS is a list
  cmake --build "$dir" -j"$JOBS" ${TARGETS:+--target $TARGETS}
  local exclude="${EXCLUDE:-}" label_args=()
  [ "$BARE" = 1 ] && exclude="$exclude data"
  read -r -a exclude <<<"$exclude"
  if [ "${#exclude[@]}" -gt 0 ]; then
    label_args=(-LE "^($(IFS='|'; echo "${exclude[*]}"))\$")
  fi
  (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 900 "${label_args[@]}" "$@")
  if [ "$BARE" = 1 ]; then
    local others=() skipped
    read -r -a others <<<"${EXCLUDE:-}"
    [ "${#others[@]}" -gt 0 ] && others=(-LE "^($(IFS='|'; echo "${others[*]}"))\$")
    skipped=$(cd "$dir" && ctest -N -L '^data$' "${others[@]}" "$@" | sed -n 's/^ *Test *#[0-9]*: //p' | sed 's/  *# GetParam().*//')
    if [ -n "$skipped" ]; then
      echo
      echo "SKIPPED (no test data at $DATA): $(echo "$skipped" | wc -l) tests of $dir/ that need it:"
      echo "$skipped" | sed 's/^/  /'
      echo "$dir/: $(echo "$skipped" | wc -l) tests skipped (no test data at $DATA)" >>"$SKIPPED_LOG"
    fi
  fi
}

# At the end: what was skipped, once more, so it cannot be missed.
summary() {
  if [ -s "$SKIPPED_LOG" ]; then
    echo
    echo "SKIPPED, listed above:"
    sed 's/^/  /' "$SKIPPED_LOG"
  fi
}

if [ "$QUICK" = 1 ]; then
  stage "Release build, all tests but the soak"
  EXCLUDE=soak build_and_test build -DCMAKE_BUILD_TYPE=Release --
  summary
  exit 0
fi

stage "1/4 Release build, all tests (the soak takes 5 minutes)"
build_and_test build -DCMAKE_BUILD_TYPE=Release --

stage "2/4 fuzzers, ${FUZZ_SECONDS:-30} s each"
scripts/run_fuzzers.sh "${FUZZ_SECONDS:-30}"

stage "3/4 ASan+UBSan build, all tests but the soak"
# halt_on_error: the first report fails the test; UBSan is fatal by build flag.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/sanitizers/lsan.supp"
export SHARDLM_SANITIZED=1  # tests/hostile: instrumented memory bounds are scaled
# No benchmarks: no test runs them, and CI builds this folder from scratch.
EXCLUDE=soak build_and_test build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDLM_SANITIZE=ON \
  -DSHARDLM_BUILD_BENCH=OFF --
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS SHARDLM_SANITIZED

stage "4/4 TSan build, the concurrency tests"
# ignore_noninstrumented_modules: Debian's gRPC, Abseil and oneTBB are not
# built with TSan; without it every access they order looks racy and the
# reports (suppressed or not) make the run 25x slower.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$(pwd)/tests/sanitizers/tsan.supp"
TARGETS="engine_test stage_service_test pipeline_e2e_test failover_e2e_test chain_e2e_test" \
  build_and_test build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDLM_TSAN=ON \
  -- -R '(EngineTest|StageServiceTest|RemoteStageTest|PipelineE2e[A-Za-z]*Test|Failover[A-Za-z]*Test|Chain[A-Za-z]*Test)\.' \
  -E 'LongBatchesAreChunked'  # one thread, minutes of instrumented kernels: Release and ASan run it

stage "aarch64 cross build, its kernel, tokenizer, forward and golden tests and shardlm generate under qemu"
scripts/test_aarch64.sh

stage "all stages passed"
summary
