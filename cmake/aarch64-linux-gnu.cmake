# Cross-compile the native parts for 64-bit Arm Linux (Jetson Orin/Thor, SBSA servers).
#
#   cmake -S . -B build/x --toolchain cmake/aarch64-linux-gnu.cmake [-D...]
#
# Settings (-D or environment variables of the same names):
# C/C++ compiler: SIMAM_CROSS_CC / SIMAM_CROSS_CXX (default Debian's aarch64-linux-gnu-gcc/g++).
# `make cross-aarch64` passes wrappers around `zig cc -target aarch64-linux-gnu.2.31`: they link
# against glibc 2.31's symbol set (JetPack 5 = Ubuntu 20.04), which Debian 12's cross glibc (2.36)
# cannot (its binaries need GLIBC_2.34).
# CUDA: nvcc compiles the device code for any host; its host half goes through the GNU cross g++
# (nvcc accepts gcc or clang as host compiler, not zig). The aarch64 CUDA runtime is not part of an
# x86-64 toolkit: SIMAM_CROSS_CUDART_DIR names a folder with libcudart_static.a and libcudart.so*
# for aarch64 (e.g. nvidia/cu13/lib of the aarch64 wheel `nvidia-cuda-runtime`, unpacked).
# Tests run under qemu-aarch64 through CMAKE_CROSSCOMPILING_EMULATOR (set QEMU_LD_PREFIX to an
# aarch64 sysroot, e.g. /usr/aarch64-linux-gnu).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Each setting comes from -D or else the environment: toolchain files are re-read by try_compile
# and by check_language(), whose sub-projects see the environment but not the -D values.
foreach(_simam_var SIMAM_CROSS_CC SIMAM_CROSS_CXX SIMAM_CROSS_CUDA_HOST SIMAM_CROSS_CUDART_DIR)
  if(NOT ${_simam_var} AND DEFINED ENV{${_simam_var}})
    set(${_simam_var} "$ENV{${_simam_var}}")
  endif()
endforeach()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES SIMAM_CROSS_CC SIMAM_CROSS_CXX SIMAM_CROSS_CUDA_HOST
     SIMAM_CROSS_CUDART_DIR)
if(NOT SIMAM_CROSS_CC)
  set(SIMAM_CROSS_CC aarch64-linux-gnu-gcc)
endif()
if(NOT SIMAM_CROSS_CXX)
  set(SIMAM_CROSS_CXX aarch64-linux-gnu-g++)
endif()
if(NOT SIMAM_CROSS_CUDA_HOST)
  set(SIMAM_CROSS_CUDA_HOST aarch64-linux-gnu-g++)
endif()
set(CMAKE_C_COMPILER "${SIMAM_CROSS_CC}")
set(CMAKE_CXX_COMPILER "${SIMAM_CROSS_CXX}")
set(CMAKE_CUDA_HOST_COMPILER "${SIMAM_CROSS_CUDA_HOST}")
# The archiver of the GNU cross binutils handles every aarch64 object (a CUDA-only probe project
# would otherwise find no ranlib at all).
find_program(CMAKE_AR aarch64-linux-gnu-ar)
find_program(CMAKE_RANLIB aarch64-linux-gnu-ranlib)
# Nothing built for aarch64 can run on the build machine except under the emulator: probe
# compilers by compiling only.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

find_program(SIMAM_QEMU_AARCH64 qemu-aarch64)
if(SIMAM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${SIMAM_QEMU_AARCH64}")
endif()

# Seed FindCUDAToolkit's cache with the aarch64 runtime so CUDA::cudart_static is the Arm archive,
# not the x86-64 one beside nvcc (the include directory of the host toolkit is architecture-neutral).
if(SIMAM_CROSS_CUDART_DIR)
  set(CUDA_CUDART "${SIMAM_CROSS_CUDART_DIR}/libcudart.so" CACHE FILEPATH "aarch64 libcudart")
  set(CUDA_cudart_LIBRARY "${SIMAM_CROSS_CUDART_DIR}/libcudart.so" CACHE FILEPATH "aarch64 libcudart")
  set(CUDA_cudart_static_LIBRARY "${SIMAM_CROSS_CUDART_DIR}/libcudart_static.a" CACHE FILEPATH
      "aarch64 libcudart_static")

# nvcc looks for targets/aarch64-linux beside itself when the host compiler is an aarch64 one; an
# x86-64 toolkit has only targets/x86_64-linux, whose headers serve any host architecture. Its lib/
# is searched too, but the linker skips x86-64 archives and takes the aarch64 runtime from -L.
  set(CMAKE_CUDA_FLAGS_INIT "-target-dir x86_64-linux -L${SIMAM_CROSS_CUDART_DIR}")
  # C++ links carry the CUDA runtime's implicit libraries (cudadevrt, cudart_static) by name; the
  # standard-libraries slot survives a -DCMAKE_*_LINKER_FLAGS=... on the command line.
  set(CMAKE_CXX_STANDARD_LIBRARIES_INIT "-L${SIMAM_CROSS_CUDART_DIR}")
  # cudart_static needs librt; a cross build has no host librt to find, the linker has its own.
  set(CUDAToolkit_rt_LIBRARY rt CACHE STRING "librt for cudart_static")
endif()

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
