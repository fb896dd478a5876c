#!/usr/bin/env bash
# Installs everything shardlm needs to build and test, from Debian 12 packages.
# With --if-missing it does nothing when every package is already installed
# (the quick-start scripts call it that way).
set -euo pipefail
PACKAGES=(
  cmake ninja-build g++ pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libtbb-dev libtbbmalloc2 libtbbbind-2-5 nlohmann-json3-dev libcpp-httplib-dev libmicrohttpd-dev libpcre2-dev
  libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev python3 python3-grpcio python3-jinja2 iproute2 openssl procps time
  python3-h2 python3-protobuf  # tests/hostile/grpc_*: raw HTTP/2 attacks, strict gRPC client
)
if [ "${1:-}" = "--if-missing" ]; then
  installed=$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -c 'install ok installed' || true)
  [ "$installed" = "${#PACKAGES[@]}" ] && exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing build dependencies (Debian packages)..." >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
