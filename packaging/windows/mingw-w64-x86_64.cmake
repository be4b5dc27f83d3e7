# CMake toolchain: Windows x64 with Debian 12's MinGW-w64 (posix thread model: std::thread and
# std::mutex need it), packages g++-mingw-w64-x86-64-posix and gcc-mingw-w64-x86-64-posix.
#
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=packaging/windows/mingw-w64-x86_64.cmake \
#         -DFERRY_WIN_DEPS_PREFIX=$(packaging/windows/deps.sh)
#
# FERRY_WIN_DEPS_PREFIX is the tree packaging/windows/deps.sh built (OpenSSL, Poco, SQLite,
# simdjson, the Boost headers): packages are searched there and in the toolchain's own
# /usr/x86_64-w64-mingw32 only, never among the host's Linux headers and libraries.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(FERRY_MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${FERRY_MINGW_TRIPLET}-gcc-posix)
set(CMAKE_CXX_COMPILER ${FERRY_MINGW_TRIPLET}-g++-posix)
set(CMAKE_RC_COMPILER ${FERRY_MINGW_TRIPLET}-windres)

if(NOT FERRY_WIN_DEPS_PREFIX AND DEFINED ENV{FERRY_WIN_DEPS_PREFIX})
  set(FERRY_WIN_DEPS_PREFIX $ENV{FERRY_WIN_DEPS_PREFIX})
endif()
# try_compile projects re-read this file: hand them the prefix.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FERRY_WIN_DEPS_PREFIX)
set(CMAKE_FIND_ROOT_PATH /usr/${FERRY_MINGW_TRIPLET} ${FERRY_WIN_DEPS_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
