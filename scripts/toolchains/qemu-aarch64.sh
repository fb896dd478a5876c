#!/usr/bin/env bash
# Runs an aarch64 program of the cross build under qemu-user: the loader and
# libc of Debian's cross toolchain (QEMU_LD_PREFIX), the arm64 packages'
# libraries from /usr/lib/aarch64-linux-gnu, and by default a CPU with every
# extension qemu knows ("max": NEON with the ARMv8.2 dot product). Set
# QEMU_CPU=cortex-a72 (ARMv8.0, no dot product) to run the plain NEON path.
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
export QEMU_CPU="${QEMU_CPU:-max}"
export QEMU_SET_ENV="LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu:/lib/aarch64-linux-gnu"
exec qemu-aarch64-static "$@"
