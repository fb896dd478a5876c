#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/NAME_fuzzer.cc) with clang, ASan and
# UBSan in $BUILD_DIR (default build-fuzz) and runs each for a bounded time.
# Exits non-zero if any fuzzer crashes, leaks, times out or trips a sanitizer;
# the crashing input is kept in $BUILD_DIR/fuzz-artifacts/. Corpora live in
# $BUILD_DIR/corpus/NAME, never in the repository.
#
#   scripts/run_fuzzers.sh [SECONDS] [NAME_fuzzer ...]
#
# SECONDS per fuzzer: the first argument if numeric, else $FUZZ_SECONDS, else
# 30. Per fuzzer, tests/fuzz/NAME_fuzzer.seeds may list libFuzzer options and
# seeds (see gguf_fuzzer.seeds for the syntax) and NAME_fuzzer.dict is passed
# as -dict. Seeds come from the shared test data ($SHARDLM_TEST_DATA, default
# ../shared); without that folder (a bare clone) the `file` seeds are skipped
# and listed, but models/stories260K.gguf comes from the copy embedded in
# common/model/embedded/. SKIP_BUILD=1 runs already-built fuzzers (used by ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
JOBS="${JOBS:-2}"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
if [ "$#" -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  SECONDS_EACH="$1"
  shift
fi
DATA_DIR="${SHARDLM_TEST_DATA:-$ROOT/../shared}"
DATA=""
if [ -d "$DATA_DIR" ]; then DATA="$(cd "$DATA_DIR" && pwd)"; fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/*_fuzzer.cc; do targets+=("$(basename "$src" .cc)"); done
fi

# Tools that seed files ask for ("run TARGET ...") are built too.
build_targets=("${targets[@]}")
for name in "${targets[@]}"; do
  seeds="tests/fuzz/$name.seeds"
  [ -f "$seeds" ] || continue
  while read -r kind target _; do
    if [ "$kind" = run ]; then build_targets+=("$target"); fi
  done < "$seeds"
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSHARDLM_FUZZ=ON -DSHARDLM_BUILD_TESTS=OFF -DSHARDLM_BUILD_BENCH=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j"$JOBS" --target $(printf '%s\n' "${build_targets[@]}" | sort -u)
fi

# Path of built executable $1 (bin/ if CMAKE_RUNTIME_OUTPUT_DIRECTORY is set,
# else its source folder's build folder).
find_binary() {
  local name="$1" candidate
  for candidate in "$BUILD_DIR/bin/$name" "$BUILD_DIR/tests/fuzz/$name" "$BUILD_DIR/tools/$name"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  find "$BUILD_DIR" -type f -name "$name" -perm -u+x | head -n 1
}

# Fills corpus dir $2 from seeds file $1 and prints the libFuzzer options.
prepare_seeds() {
  local seeds="$1" corpus="$2" n=0 kind rest path bytes target
  [ -f "$seeds" ] || return 0
  while read -r kind rest; do
    case "$kind" in
      ''|'#'*) ;;
      option) echo "$rest" ;;
      file)
        read -r path bytes <<<"$rest"
        n=$((n + 1))
        local from="$DATA/$path"
        if [ -z "$DATA" ]; then
          if [ "$path" = models/stories260K.gguf ]; then
            from="$ROOT/common/model/embedded/stories260K.gguf"
          else
            echo "SKIPPED seed (no test data at $DATA_DIR): $path" >&2
            continue
          fi
        fi
        # head -c, not cp: the shared data is read-only and a copy would be too.
        head -c "${bytes:-1000000000}" "$from" > "$corpus/seed-$n-$(basename "$path")"
        ;;
      run)
        n=$((n + 1))
        read -r target rest <<<"$rest"
        local tool
        tool="$(find_binary "$target")"
        [ -n "$tool" ] || { echo "seed tool $target not built" >&2; return 1; }
        # shellcheck disable=SC2086 # the arguments are meant to split
        "$tool" ${rest//\{\}/$corpus/seed-$n-$target} >&2
        ;;
      *) echo "$seeds: unknown line kind '$kind'" >&2; return 1 ;;
    esac
  done < "$seeds"
}

failed=()
mkdir -p "$BUILD_DIR/fuzz-artifacts"
for name in "${targets[@]}"; do
  corpus="$BUILD_DIR/corpus/$name"
  mkdir -p "$corpus"
  options=()
  while read -r opt; do [ -n "$opt" ] && options+=("$opt"); done \
    < <(prepare_seeds "tests/fuzz/$name.seeds" "$corpus")
  [[ " ${options[*]-} " == *" -max_len="* ]] || options+=("-max_len=4096")
  [ -f "tests/fuzz/$name.dict" ] && options+=("-dict=$ROOT/tests/fuzz/$name.dict")
  log="$BUILD_DIR/fuzz-artifacts/$name.log"
  echo "== $name: ${SECONDS_EACH}s, $(ls "$corpus" | wc -l) corpus files, ${options[*]}"
  bin="$(find_binary "$name")"
  if [ -z "$bin" ]; then
    echo "!! $name: not built"
    failed+=("$name")
    continue
  fi
  if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$name-" "${options[@]}" \
      "$corpus" > "$log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done" "$log" || true
  else
    tail -n 40 "$log"
    echo "!! $name FAILED (full log: $log)"
    failed+=("$name")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzers with findings: ${failed[*]}"
  exit 1
fi
echo "all fuzzers ran clean"
