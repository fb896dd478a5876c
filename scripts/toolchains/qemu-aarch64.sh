#!/usr/bin/env bash
# Runs an aarch64 program of the cross build under qemu-user: the loader and
# libc of Debian's cross toolchain (QEMU_LD_PREFIX), the arm64 packages'
# libraries from /usr/lib/aarch64-linux-gnu, and by default a CPU with every
# extension qemu knows ("max": NEON with the ARMv8.2 dot product). Set
# QEMU_CPU=cortex-a72 (ARMv8.0, no dot product) to run the plain NEON path.
#
# The loader and libc.so.6 must come from the same glibc build: they share the
# private layout of ld.so's _rtld_global. The loader is the cross toolchain's
# ($QEMU_LD_PREFIX/lib/ld-linux-aarch64.so.1, libc6-arm64-cross 2.36-8cross1),
# but /usr/lib/aarch64-linux-gnu holds libc6:arm64's libc.so.6 (2.36-9+deb12u*,
# whose _rtld_global is 8 bytes longer). Mixed, pthread_create can walk the
# thread-stack cache list at the wrong offset and spin forever (seen: `shardlm
# generate`, forward_test and golden_test hung before their first output, the
# kernel tests happened to pass). So the prefix's own lib/
# (glibc, libstdc++ and libgcc_s of the cross toolchain, what the build linked
# against) comes first, the arm64 packages' libraries after it.
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
export QEMU_CPU="${QEMU_CPU:-max}"
export QEMU_SET_ENV="LD_LIBRARY_PATH=$QEMU_LD_PREFIX/lib:/usr/lib/aarch64-linux-gnu:/lib/aarch64-linux-gnu"
exec qemu-aarch64-static "$@"
