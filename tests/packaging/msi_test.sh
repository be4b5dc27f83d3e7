#!/usr/bin/env bash
# The Windows installer packaging/windows/build.sh built with wixl from the real Windows binaries
# (ferry.exe, the plugin DLLs, the DLLs they need) and the generated Windows config, its tables
# read back with msiinfo: files (with the staged files' sizes), components, directories, the
# service and its control, the registry, the config component's NeverOverwrite/Permanent.
# wixl/msiinfo missing or the MSI not built is a failure, not a skip.
#
#   msi_test.sh SOURCE_DIR BUILD_DIR WINDOWS_BUILD_DIR
set -euo pipefail
src=$1 build=$2 win=$3
fail() { echo "msi_test: FAIL: $*" >&2; exit 1; }
command -v wixl >/dev/null || fail "wixl not found (scripts/setup installs wixl and msitools)"
command -v msiinfo >/dev/null || fail "msiinfo not found (scripts/setup installs msitools)"
version=$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
msi=$win/ferry-$version-x64.msi
stage=$win/stage
[ -f "$msi" ] || fail "$msi is missing: run packaging/windows/build.sh $build $win first (scripts/test does)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t plugins < "$build/packaging/msi/plugins.txt"
((${#plugins[@]})) || fail "no plugins listed in $build/packaging/msi/plugins.txt"
cp "$msi" "$work/ferry.msi"
msiinfo tables "$work/ferry.msi" > "$work/tables"
for t in File Component Directory ServiceInstall ServiceControl Registry CreateFolder FeatureComponents; do
  grep -qx "$t" "$work/tables" || fail "no $t table"
  msiinfo export "$work/ferry.msi" "$t" | tr -d "\r" | tail -n +4 > "$work/$t.idt"
  echo "== $t"; cat "$work/$t.idt"
done

row() {  # row TABLE FIELD... : a tab-separated row with these leading fields exists
  local t=$1; shift
  cut -f1-$# "$work/$t.idt" | grep -qxF "$(IFS=$'\t'; echo "$*")" || fail "$t has no row starting with: $*"
}
row File ferry.exe FerryExe ferry.exe
row File ferry.ini FerryConfig ferry.ini
for p in "${plugins[@]}"; do
  row File "Plugin_$p.dll" "Plugin_$p" "$p.dll"
  grep -q "^Plugin_$p	{[0-9A-F-]*}	PLUGINDIR	" "$work/Component.idt" || fail "plugin $p not in PLUGINDIR"
  row FeatureComponents Main "Plugin_$p"
done
[ "$(grep -c '^Plugin_.*\.dll	' "$work/File.idt")" -eq "${#plugins[@]}" ] || fail "plugin file count"
grep -q $'^FerryExe\t{[0-9A-F-]*}\tINSTALLDIR\t256\t' "$work/Component.idt" || fail "ferry.exe component (64-bit, INSTALLDIR)"
grep -q $'^FerryConfig\t{[0-9A-F-]*}\tDATADIR\t400\t' "$work/Component.idt" ||
  fail "config component must be 64-bit + Permanent + NeverOverwrite (400)"
# The real files: ferry.exe and every plugin with the size of the staged (stripped) binary, and
# every DLL they need beside ferry.exe: the MinGW runtime, Poco, OpenSSL, SQLite.
size() { stat -c %s "$1"; }
row File ferry.exe FerryExe ferry.exe "$(size "$stage/ferry.exe")"
head -c2 "$stage/ferry.exe" | grep -q MZ || fail "ferry.exe is not a Windows executable"
for p in "${plugins[@]}"; do row File "Plugin_$p.dll" "Plugin_$p" "$p.dll" "$(size "$stage/plugins/$p.dll")"; done
for dll in libstdc++-6.dll libgcc_s_seh-1.dll libwinpthread-1.dll sqlite3.dll libcrypto-3-x64.dll \
           libssl-3-x64.dll; do
  [ -f "$stage/$dll" ] || fail "$dll is not staged"
done
ls "$stage" | grep -q '^libPocoFoundation.*\.dll$' || fail "no Poco Foundation DLL staged"
for f in "$stage"/*.dll; do
  dll=$(basename "$f" .dll)
  id=Runtime_${dll//[^A-Za-z0-9_]/_}
  row File "$id.dll" "$id" "$dll.dll" "$(size "$f")"
  grep -q "^$id	{[0-9A-F-]*}	INSTALLDIR	" "$work/Component.idt" || fail "$dll.dll not beside ferry.exe"
done
row Directory INSTALLDIR ProgramFiles64Folder Ferry
row Directory PLUGINDIR INSTALLDIR plugins
row Directory DATADIR CommonAppDataFolder Ferry
row Directory STATEDIR DATADIR state
row Directory SPOOLDIR DATADIR spool
row CreateFolder STATEDIR FerryStateDir
# ServiceInstall: own process (16), demand start (3), normal errors (1), runs `run --config`.
grep -q $'^FerryService\tFerry\tFerry integration host\t16\t3\t1\t.*\trun --config "\[DATADIR\]ferry.ini"\tFerryExe\t' \
  "$work/ServiceInstall.idt" || fail "ServiceInstall row"
# ServiceControl events: stop on install (0x02) and uninstall (0x20), delete on uninstall (0x80).
row ServiceControl FerryServiceControl Ferry 162
cut -f2- "$work/Registry.idt" | grep -qxF "$(printf '2\tSoftware\\Ferry\\\tInstallDir\t[INSTALLDIR]\tFerryRegistry')" ||
  fail "InstallDir registry value"
cut -f2- "$work/Registry.idt" | grep -qxF "$(printf '2\tSoftware\\Ferry\\\tConfigFile\t[DATADIR]ferry.ini\tFerryRegistry')" ||
  fail "ConfigFile registry value"
# The Windows config: Windows paths, every plugin present and disabled.
grep -qx 'journal = C:\\ProgramData\\Ferry\\state\\journal.db' "$stage/ferry.ini" || fail "Windows journal path"
for p in "${plugins[@]}"; do grep -qx "plugin = $p" "$stage/ferry.ini" || fail "$p not in the Windows config"; done
echo "msi_test: all checks passed"
