#!/usr/bin/env bash
# Builds Ferry's Windows x64 dependencies with Debian 12's MinGW-w64, once, from Debian's own
# source packages (`apt-get source`), and prints the install prefix they are in:
#
#   prefix=$(packaging/windows/deps.sh)
#
#   OpenSSL     shared (libcrypto-3-x64.dll, libssl-3-x64.dll)
#   SQLite      Debian's sqlite3, its amalgamation as sqlite3.dll (the journal and Poco's
#               DataSQLite share this one copy)
#   Poco        shared: Foundation, Net, NetSSL (OpenSSL), Crypto, JSON, Util (without XML
#               configuration), Data, DataSQLite; patches in packaging/windows/patches/poco
#   simdjson    static, with its CMake package
#   Boost       the host's headers (/usr/include/boost, libboost-dev), linked into the prefix
#               alone so that MinGW never sees the host's other headers
#
# The prefix is ${FERRY_WIN_DEPS:-/var/cache/ferry/win-deps}/<key>, the key made of the source
# packages' versions, the compiler's version and a digest of the patches and of this recipe: a
# later run with the same key prints it in a second or two. Downloaded sources are kept in
# ${FERRY_WIN_DEPS}/src. deb-src for Debian's archive is enabled when missing (debsrc.sh, needs
# root or sudo). Builds run under `nice`, -j${FERRY_WIN_JOBS:-2}; the log of a failed step is
# printed. A step that failed is taken up again by the next run: the steps done stay in
# <key>.partial (stamps .step-<name>) until the whole prefix is complete.
#
#   packaging/windows/deps.sh --where    prints the prefix without building anything
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${FERRY_WIN_DEPS:-/var/cache/ferry/win-deps}
jobs=${FERRY_WIN_JOBS:-2}
triplet=x86_64-w64-mingw32
recipe=1  # bump when a change below changes what is built
say() { echo "deps: $*" >&2; }

for tool in $triplet-gcc-posix $triplet-g++-posix cmake ninja perl tclsh dpkg-source; do
  command -v "$tool" >/dev/null ||
    { say "$tool not found: run scripts/setup (g++-mingw-w64-x86-64-posix, tcl, ...)"; exit 69; }
done
"$here/debsrc.sh" poco
mkdir -p "$cache/src"

# fetch PACKAGE: prints the version used. The newest version the index lists whose sources are
# already in $cache/src or can be downloaded (a mirror may list a version it no longer serves).
fetch() {
  local pkg=$1 v file
  for v in $(apt-cache showsrc --only-source "$pkg" | sed -n 's/^Version: //p' | sort -Vr | uniq); do
    file="${pkg}_${v#*:}.dsc"
    if [ -f "$cache/src/$file" ]; then echo "$v"; return; fi
    if (cd "$cache/src" && apt-get source -q --download-only "$pkg=$v" >"$cache/src/$pkg.log" 2>&1); then
      echo "$v"; return
    fi
    say "$pkg $v: not downloadable, trying an older version ($(tail -1 "$cache/src/$pkg.log"))"
  done
  say "no downloadable source of $pkg"; exit 69
}
poco=$(fetch poco); openssl=$(fetch openssl); sqlite=$(fetch sqlite3); simdjson=$(fetch simdjson)
gcc=$($triplet-g++-posix -dumpfullversion)
digest=$( { echo "$recipe"; cat "$here/mingw-w64-x86_64.cmake";
            find "$here/patches" -type f -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -c1-10)
key="poco-${poco}_openssl-${openssl}_sqlite-${sqlite}_simdjson-${simdjson}_gcc-${gcc}_${digest}"
key=${key//[^A-Za-z0-9._+-]/_}
prefix=$cache/$key
if [ -f "$prefix/.complete" ] || [ "${1:-}" = --where ]; then echo "$prefix"; exit 0; fi

say "building into $prefix (once; 20 to 45 minutes on 2 cores)"
launcher=()  # a rebuild (a new Debian update) is mostly cache hits
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
stage=$prefix.partial
work=$prefix.work  # kept until everything is built: a failed step goes on where it stopped
mkdir -p "$work"
mkdir -p "$stage"/{bin,lib,include}
step() {  # step NAME COMMAND...: runs it in the background of a log, shows the log on failure
  local name=$1; shift
  local t0=$SECONDS
  if [ -f "$stage/.step-$name" ]; then say "$name: done by an earlier run"; return; fi
  # In the background so that `set -e` holds inside the step (it does not under `if`).
  "$@" >"$work/$name.log" 2>&1 &
  if ! wait $!; then
    tail -60 "$work/$name.log" >&2; say "$name failed (log above)"; exit 1
  fi
  touch "$stage/.step-$name"
  say "$name done ($((SECONDS - t0)) s)"
}
unpack() {  # unpack PACKAGE VERSION: extracts the Debian source (with Debian's patches) in $work
  [ -d "$work/$1" ] && return  # an earlier run's, with its build folder
  (cd "$work" && dpkg-source -q -x "$cache/src/${1}_${2#*:}.dsc" "$1" >/dev/null 2>&1)
}

# --- OpenSSL ------------------------------------------------------------------------------------
build_openssl() {
  unpack openssl "$openssl"
  cd "$work/openssl"
  ./Configure mingw64 shared no-tests --cross-compile-prefix=$triplet- \
    --prefix="$stage" --libdir=lib
  nice make -j"$jobs" build_libs
  make install_dev  # headers, import libraries and the DLLs (install_runtime_libs)
}
step openssl build_openssl

# --- SQLite (the amalgamation of Debian's source, built as sqlite3.dll) --------------------------
build_sqlite() {
  unpack sqlite3 "$sqlite"
  mkdir -p "$work/sqlite-host" && cd "$work/sqlite-host"
  "$work/sqlite3/configure" --disable-tcl >/dev/null
  nice make -j"$jobs" sqlite3.c
  nice $triplet-gcc-posix -O2 -shared -o "$stage/bin/sqlite3.dll" sqlite3.c \
    '-DSQLITE_API=__declspec(dllexport)' -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_COLUMN_METADATA \
    -DSQLITE_OMIT_LOAD_EXTENSION -Wl,--out-implib,"$stage/lib/libsqlite3.dll.a"
  cp sqlite3.h sqlite3ext.h "$stage/include/"
}
step sqlite build_sqlite

# --- Poco -----------------------------------------------------------------------------------------
build_poco() {
  unpack poco "$poco"
  cd "$work/poco"
  for p in "$here"/patches/poco/*.patch; do
    patch -p1 --forward --dry-run < "$p" >/dev/null && patch -p1 --forward < "$p"
  done
  # -O1: the one-time build stays short; Ferry's hot paths (simdjson, SQLite) are built -O2/-O3.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" \
    -DCMAKE_TOOLCHAIN_FILE="$here/mingw-w64-x86_64.cmake" -DFERRY_WIN_DEPS_PREFIX="$stage" \
    -DCMAKE_INSTALL_PREFIX="$stage" -DBUILD_SHARED_LIBS=ON -DENABLE_TESTS=OFF "${launcher[@]}" \
    -DCMAKE_MC_COMPILER="$(command -v $triplet-windmc)" \
    -DPOCO_UNBUNDLED=OFF -DPOCO_DATA_SQLITE_UNBUNDLED=ON -DFORCE_OPENSSL=ON \
    -DENABLE_FOUNDATION=ON -DENABLE_NET=ON -DENABLE_NETSSL=ON -DENABLE_NETSSL_WIN=OFF \
    -DENABLE_CRYPTO=ON -DENABLE_JSON=ON -DENABLE_UTIL=ON -DENABLE_XML=OFF -DENABLE_DATA=ON \
    -DENABLE_DATA_SQLITE=ON -DENABLE_DATA_MYSQL=OFF -DENABLE_DATA_POSTGRESQL=OFF \
    -DENABLE_DATA_ODBC=OFF -DENABLE_MONGODB=OFF -DENABLE_REDIS=OFF -DENABLE_PDF=OFF \
    -DENABLE_ZIP=OFF -DENABLE_SEVENZIP=OFF -DENABLE_APACHECONNECTOR=OFF -DENABLE_CPPPARSER=OFF \
    -DENABLE_ENCODINGS=OFF -DENABLE_ENCODINGS_COMPILER=OFF -DENABLE_PAGECOMPILER=OFF \
    -DENABLE_PAGECOMPILER_FILE2PAGE=OFF -DENABLE_POCODOC=OFF -DENABLE_JWT=OFF \
    -DENABLE_ACTIVERECORD=OFF -DENABLE_ACTIVERECORD_COMPILER=OFF
  nice cmake --build build -j"$jobs"
  cmake --install build
  # Poco 1.11's PocoUtilConfig.cmake asks for PocoXML even when Util was built without it.
  sed -i '/find_dependency(PocoXML)/d' "$stage/cmake/PocoUtilConfig.cmake"
}
step poco build_poco

# --- simdjson -----------------------------------------------------------------------------------
build_simdjson() {
  unpack simdjson "$simdjson"
  cd "$work/simdjson"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$here/mingw-w64-x86_64.cmake" -DFERRY_WIN_DEPS_PREFIX="$stage" \
    -DCMAKE_INSTALL_PREFIX="$stage" -DBUILD_SHARED_LIBS=OFF -DSIMDJSON_DEVELOPER_MODE=OFF "${launcher[@]}" \
    -DSIMDJSON_ENABLE_THREADS=ON
  nice cmake --build build -j"$jobs"
  cmake --install build
}
step simdjson build_simdjson

# --- Boost headers ------------------------------------------------------------------------------
[ -f /usr/include/boost/version.hpp ] || { say "/usr/include/boost missing: apt-get install libboost-dev"; exit 69; }
ln -sfn /usr/include/boost "$stage/include/boost"

# The toolchain's runtime DLLs the programs need, beside the others (the MSI's DLL closure).
for dll in libstdc++-6.dll libgcc_s_seh-1.dll libwinpthread-1.dll zlib1.dll; do
  f=$($triplet-g++-posix -print-file-name="$dll")
  [ -f "$f" ] || f=/usr/$triplet/lib/$dll
  [ -f "$f" ] && cp "$f" "$stage/bin/"
done
cat > "$stage/VERSIONS" <<INFO
poco $poco
openssl $openssl
sqlite3 $sqlite
simdjson $simdjson
boost headers $(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' /usr/include/boost/version.hpp)
$triplet-g++-posix $gcc
INFO
rm -f "$stage"/.step-*
rm -rf "$work"
touch "$stage/.complete"
rm -rf "$prefix"
mv "$stage" "$prefix"
say "done: $prefix"
echo "$prefix"
