#!/usr/bin/env bash
# Installs everything shardlm needs to build and test, from Debian 12 packages.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  cmake ninja-build g++ pkg-config git ca-certificates \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libabsl-dev libtbb-dev libtbbmalloc2 libtbbbind-2-5 nlohmann-json3-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  clang libclang-rt-14-dev python3 python3-grpcio iproute2 openssl \
  >/dev/null
