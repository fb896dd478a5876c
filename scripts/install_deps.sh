#!/usr/bin/env bash
# Installs everything shardlm needs to build and test, from Debian 12 packages.
# With --if-missing it does nothing when every package is already installed
# (the quick-start scripts call it that way). With --build-only it leaves out
# the packages only the tests use (the demo needs none of them: no browser,
# no Python). With --aarch64 it also installs
# the cross toolchain, qemu-user and the arm64 libraries (scripts/test.sh's
# aarch64 stage; the demo does not need them).
set -euo pipefail
PACKAGES=(
  cmake ninja-build g++ pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libtbb-dev libtbbmalloc2 libtbbbind-2-5 nlohmann-json3-dev libcpp-httplib-dev libmicrohttpd-dev libpcre2-dev
  libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  openssl procps time
)
# Only the tests use these.
TEST_PACKAGES=(
  clang libclang-rt-14-dev  # the fuzzers (libFuzzer)
  python3 python3-grpcio python3-jinja2 iproute2
  python3-h2 python3-protobuf  # tests/hostile/grpc_*: raw HTTP/2 attacks, strict gRPC client
  chromium  # tests/webui: the chat page in a headless browser (DevTools protocol)
)
# The aarch64 cross build (scripts/toolchains/aarch64-linux-gnu.cmake) and
# qemu-user to run its tests: Debian's cross compiler and the arm64 builds of
# the libraries, installed beside the amd64 ones (multiarch; same versions,
# so they co-install; protoc and grpc_cpp_plugin stay the amd64 ones).
AARCH64_PACKAGES=(
  g++-aarch64-linux-gnu qemu-user-static
  libgrpc++-dev:arm64 libprotobuf-dev:arm64 libssl-dev:arm64
  libabsl-dev:arm64 libtbb-dev:arm64 libtbbmalloc2:arm64 libtbbbind-2-5:arm64
  libcpp-httplib-dev:arm64 libmicrohttpd-dev:arm64 libcurl4-openssl-dev:arm64 libpcre2-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64
)
IF_MISSING=0 AARCH64=0 BUILD_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --if-missing) IF_MISSING=1 ;;
    --aarch64) AARCH64=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) echo "usage: scripts/install_deps.sh [--if-missing] [--build-only] [--aarch64]" >&2; exit 2 ;;
  esac
done
if [ "$BUILD_ONLY" = 0 ]; then PACKAGES+=("${TEST_PACKAGES[@]}"); fi
if [ "$AARCH64" = 0 ]; then AARCH64_PACKAGES=(); fi
if [ "$IF_MISSING" = 1 ]; then
  all=("${PACKAGES[@]}" "${AARCH64_PACKAGES[@]}")
  # One package at a time: a library installed for amd64 and arm64 prints two lines.
  missing=0
  for p in "${all[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || { missing=1; break; }
  done
  [ "$missing" = 0 ] && exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing build dependencies (Debian packages)..." >&2
if [ "$AARCH64" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
if [ "$AARCH64" = 1 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${AARCH64_PACKAGES[@]}" >/dev/null
fi
