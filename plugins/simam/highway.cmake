# ---- Google Highway: SIMD and runtime dispatch for the CPU kernel (simam_cpu_simd.cpp) -------
# One pinned version, the same on every machine and every cross build: Debian's source tarball
# of Highway 1.2.0 (the version Debian 13 ships, so its pool keeps it), checked by SHA-256.
# Highway is header-only except for the dispatcher's CPU detection (targets.cc; per_target.cc:
# vector sizes of scalable targets such as SVE) and its error handler (abort.cc); only those are
# compiled, with whatever toolchain builds the kernels, so an aarch64 cross build gets an aarch64
# Highway without anything else to install.
# Without Highway the configure step stops with the message below (no untested second path): Highway
# always compiles a baseline target (SSE2 on x86-64, NEON on aarch64, portable EMU128 elsewhere),
# and the C++ tests run every target this machine can execute (tests/test_simam_cpu.cpp).
# Offline: -DSIMAM_HIGHWAY_SOURCE=<that tarball, or an unpacked highway-1.2.0 directory>.
set(SIMAM_HIGHWAY_VERSION 1.2.0)
set(SIMAM_HIGHWAY_URL
    "https://deb.debian.org/debian/pool/main/h/highway/highway_${SIMAM_HIGHWAY_VERSION}.orig.tar.gz")
set(SIMAM_HIGHWAY_SHA256 7e0be78b8318e8bdbf6fa545d2ecb4c90f947df03f7aadc42c1967f019e63343)
set(SIMAM_HIGHWAY_SOURCE "" CACHE PATH
    "Highway ${SIMAM_HIGHWAY_VERSION} source: its tarball or unpacked directory (default: download it)")

set(_simam_hwy_hint "download ${SIMAM_HIGHWAY_URL} (SHA-256 ${SIMAM_HIGHWAY_SHA256}) and pass \
-DSIMAM_HIGHWAY_SOURCE=<that file> (with pip: -Ccmake.define.SIMAM_HIGHWAY_SOURCE=<that file>)")

if(SIMAM_HIGHWAY_SOURCE AND IS_DIRECTORY "${SIMAM_HIGHWAY_SOURCE}")
  set(_simam_hwy_dir "${SIMAM_HIGHWAY_SOURCE}")
else()
  if(SIMAM_HIGHWAY_SOURCE)
    if(NOT EXISTS "${SIMAM_HIGHWAY_SOURCE}")
      message(FATAL_ERROR "simam: SIMAM_HIGHWAY_SOURCE=${SIMAM_HIGHWAY_SOURCE} does not exist; ${_simam_hwy_hint}")
    endif()
    set(_simam_hwy_tarball "${SIMAM_HIGHWAY_SOURCE}")
  else()
    # One download for every build tree of this checkout (pip's, the header matrix, cross and
    # sanitizer builds); build/ is git-ignored.
    set(_simam_hwy_tarball "${PROJECT_SOURCE_DIR}/build/downloads/highway-${SIMAM_HIGHWAY_VERSION}.tar.gz")
    if(NOT EXISTS "${_simam_hwy_tarball}")
      message(STATUS "simam: downloading Highway ${SIMAM_HIGHWAY_VERSION} from ${SIMAM_HIGHWAY_URL}")
      # Download to a name of its own and rename: an interrupted download never looks complete,
      # and builds configuring at the same time do not write into each other's file.
      string(RANDOM LENGTH 8 _simam_hwy_part)
      set(_simam_hwy_part "${_simam_hwy_tarball}.part-${_simam_hwy_part}")
      file(DOWNLOAD "${SIMAM_HIGHWAY_URL}" "${_simam_hwy_part}" STATUS _simam_hwy_status TIMEOUT 120)
      list(GET _simam_hwy_status 0 _simam_hwy_code)
      if(NOT _simam_hwy_code EQUAL 0)
        list(GET _simam_hwy_status 1 _simam_hwy_why)
        file(REMOVE "${_simam_hwy_part}")
        message(FATAL_ERROR "simam: could not download Highway (the CPU kernel's SIMD library): "
                            "${_simam_hwy_why}. Offline? ${_simam_hwy_hint}")
      endif()
      file(RENAME "${_simam_hwy_part}" "${_simam_hwy_tarball}")
    endif()
  endif()
  file(SHA256 "${_simam_hwy_tarball}" _simam_hwy_sum)
  if(NOT _simam_hwy_sum STREQUAL SIMAM_HIGHWAY_SHA256)
    message(FATAL_ERROR "simam: ${_simam_hwy_tarball} has SHA-256 ${_simam_hwy_sum}, not the pinned "
                        "Highway ${SIMAM_HIGHWAY_VERSION}'s ${SIMAM_HIGHWAY_SHA256}; delete it and rerun, or "
                        "${_simam_hwy_hint}")
  endif()
  set(_simam_hwy_unpacked "${CMAKE_BINARY_DIR}/_deps/highway-src")
  if(NOT EXISTS "${_simam_hwy_unpacked}/highway-${SIMAM_HIGHWAY_VERSION}/hwy/highway.h")
    file(ARCHIVE_EXTRACT INPUT "${_simam_hwy_tarball}" DESTINATION "${_simam_hwy_unpacked}")
  endif()
  set(_simam_hwy_dir "${_simam_hwy_unpacked}/highway-${SIMAM_HIGHWAY_VERSION}")
endif()

# The kernel is written against 1.2's API: refuse another version with a clear message.
if(NOT EXISTS "${_simam_hwy_dir}/hwy/highway.h")
  message(FATAL_ERROR "simam: ${_simam_hwy_dir} is not a Highway source tree (no hwy/highway.h); ${_simam_hwy_hint}")
endif()
file(STRINGS "${_simam_hwy_dir}/hwy/base.h" _simam_hwy_version_lines REGEX "#define HWY_(MAJOR|MINOR) ")
if(NOT _simam_hwy_version_lines MATCHES "HWY_MAJOR 1;.*HWY_MINOR 2")
  message(FATAL_ERROR "simam: ${_simam_hwy_dir} is not Highway 1.2 (${_simam_hwy_version_lines}); ${_simam_hwy_hint}")
endif()

add_library(simam_hwy STATIC "${_simam_hwy_dir}/hwy/targets.cc" "${_simam_hwy_dir}/hwy/per_target.cc"
                             "${_simam_hwy_dir}/hwy/abort.cc")
# SYSTEM: Highway's headers are not ours to keep free of -Wall -Wextra warnings.
target_include_directories(simam_hwy SYSTEM PUBLIC "${_simam_hwy_dir}")
target_compile_options(simam_hwy PRIVATE -O2)
message(STATUS "simam: Highway ${SIMAM_HIGHWAY_VERSION} from ${_simam_hwy_dir}")
