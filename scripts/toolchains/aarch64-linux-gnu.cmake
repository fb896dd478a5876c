# Cross build for aarch64 (arm64) Linux with Debian 12's g++-aarch64-linux-gnu
# against Debian's arm64 -dev packages installed side by side with the amd64
# ones (multiarch: scripts/install_deps.sh --aarch64). protoc and
# grpc_cpp_plugin stay the build machine's own (they only write C++ text).
#
#   cmake -S . -B build-aarch64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=scripts/toolchains/aarch64-linux-gnu.cmake
#
# Tests (and gtest's test discovery at build time) run under qemu-user through
# qemu-aarch64.sh beside this file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian's multiarch layout: libraries and CMake packages of arm64 live in
# /usr/lib/aarch64-linux-gnu, headers mostly in the shared /usr/include.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(PKG_CONFIG_EXECUTABLE /usr/bin/aarch64-linux-gnu-pkg-config CACHE FILEPATH "arm64 pkg-config")
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/qemu-aarch64.sh)
# Programs (protoc, the gRPC plugin) from the build machine, libraries and
# packages only for the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# Executables look for libc, libstdc++ and libgcc_s in the cross toolchain's
# lib/ first (RUNPATH, added by the top CMakeLists.txt): under qemu-user with
# just QEMU_LD_PREFIX=/usr/aarch64-linux-gnu the loader is that toolchain's,
# and the arm64 packages' newer libc.so.6 beside it hangs pthread_create
# (qemu-aarch64.sh says why). On an arm64 machine the folder does not exist
# and the normal search applies.
set(SHARDLM_CROSS_RUNPATH /usr/aarch64-linux-gnu/lib)
