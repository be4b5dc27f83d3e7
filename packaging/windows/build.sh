#!/usr/bin/env bash
# The Windows x64 build of Ferry, on Debian 12 with MinGW-w64: ferry.exe, every plugin as a DLL,
# the MSI and the Windows SDK.
#
#   packaging/windows/build.sh [LINUX_BUILD_DIR [WIN_BUILD_DIR]]     (defaults: build, build-win)
#
# 1. The dependencies (packaging/windows/deps.sh: built once, cached outside the clone).
# 2. A cross build in WIN_BUILD_DIR (toolchain packaging/windows/mingw-w64-x86_64.cmake).
# 3. WIN_BUILD_DIR/stage: ferry.exe, plugins\*.dll and every DLL they need (their closure by
#    `objdump -p`, from the dependencies and the MinGW runtime: libstdc++, libgcc, winpthread),
#    stripped; ferry.ini, the Windows config generated in the Linux build
#    (LINUX_BUILD_DIR/packaging/msi/ferry.ini, from the plugins' own option tables).
# 4. WIN_BUILD_DIR/ferry-<version>-x64.msi (packaging/msi/build-msi.sh, wixl).
# 5. WIN_BUILD_DIR/ferry-sdk-<version>-win64.zip: the SDK (headers, Ferry::mapping, the CMake
#    package Ferry with ferry_add_plugin()), simdjson (which Ferry::mapping links) and the
#    toolchain file: an outsider builds a plugin DLL with it (README.md, "Windows").
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
linux_build=$(cd "${1:-$src/build}" && pwd)
win_build=${2:-$src/build-win}
here=$src/packaging/windows
triplet=x86_64-w64-mingw32
jobs=${FERRY_WIN_JOBS:-2}
say() { echo "windows/build: $*" >&2; }
ini=$linux_build/packaging/msi/ferry.ini
[ -f "$ini" ] || { say "$ini is missing: build the Linux tree first (scripts/build)"; exit 66; }

t0=$SECONDS
prefix=$("$here/deps.sh")
say "dependencies in $prefix ($((SECONDS - t0)) s)"

t1=$SECONDS
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$src" -B "$win_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DCMAKE_TOOLCHAIN_FILE="$here/mingw-w64-x86_64.cmake" -DFERRY_WIN_DEPS_PREFIX="$prefix" \
  -DFERRY_BUILD_TESTS=OFF "${launcher[@]}" > "$win_build.cmake.log" 2>&1 ||
  { cat "$win_build.cmake.log" >&2; say "cmake failed"; exit 1; }
nice cmake --build "$win_build" -j"$jobs"
say "cross build done ($((SECONDS - t1)) s)"

# --- the stage: what the MSI installs -------------------------------------------------------------
stage=$win_build/stage
rm -rf "$stage"
mkdir -p "$stage/plugins"
cp "$win_build/bin/ferry.exe" "$stage/"
cp "$win_build"/bin/plugins/*.dll "$stage/plugins/"
cp "$ini" "$stage/ferry.ini"
search=("$prefix/bin" "$(dirname "$($triplet-g++-posix -print-libgcc-file-name)")" /usr/$triplet/lib)
# The DLLs a file needs that are ours to ship (Windows' own, e.g. KERNEL32.dll, are not found in
# $search and stay out), recursively.
add_closure() {
  local dll dir
  for dll in $($triplet-objdump -p "$1" | sed -n 's/^[[:space:]]*DLL Name: //p'); do
    [ -f "$stage/$dll" ] && continue
    for dir in "${search[@]}"; do
      if [ -f "$dir/$dll" ]; then
        cp "$dir/$dll" "$stage/$dll"
        add_closure "$stage/$dll"
        break
      fi
    done
  done
}
add_closure "$stage/ferry.exe"
for p in "$stage"/plugins/*.dll; do add_closure "$p"; done
$triplet-strip --strip-unneeded "$stage"/*.exe "$stage"/*.dll "$stage"/plugins/*.dll
say "stage: $(cd "$stage" && ls *.dll | tr '\n' ' ')"

version=$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
"$src/packaging/msi/build-msi.sh" "$stage" "$version" "$win_build/ferry-$version-x64.msi" \
  2> "$win_build/wixl.log" || { cat "$win_build/wixl.log" >&2; say "the MSI failed"; exit 1; }

# --- the SDK -------------------------------------------------------------------------------------
sdk=$win_build/ferry-sdk-$version-win64
rm -rf "$sdk" "$sdk.zip"
cmake --install "$win_build" --component dev --prefix "$sdk" > /dev/null
cp "$prefix/include/simdjson.h" "$sdk/include/"
cp "$prefix/lib/libsimdjson.a" "$sdk/lib/"
mkdir -p "$sdk/lib/cmake"
cp -r "$prefix/lib/cmake/simdjson" "$sdk/lib/cmake/"
cp "$here/mingw-w64-x86_64.cmake" "$sdk/share/cmake/Ferry/"
(cd "$win_build" && zip -qr "$(basename "$sdk").zip" "$(basename "$sdk")")
say "wrote $win_build/ferry-$version-x64.msi and $sdk.zip ($((SECONDS - t0)) s in all)"
