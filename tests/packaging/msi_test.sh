#!/usr/bin/env bash
# The Windows installer, built on Linux with wixl from placeholder binaries (Debian has no mingw
# Poco, so no real ferry.exe here) and the generated Windows config, then its tables read back
# with msiinfo: files, components, directories, the service and its control, the registry, the
# config component's NeverOverwrite/Permanent. wixl missing is a failure, not a skip.
#
#   msi_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
fail() { echo "msi_test: FAIL: $*" >&2; exit 1; }
command -v wixl >/dev/null || fail "wixl not found (scripts/setup installs wixl and msitools)"
command -v msiinfo >/dev/null || fail "msiinfo not found (scripts/setup installs msitools)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
mkdir -p "$stage/plugins"
printf 'MZ placeholder ferry.exe\n' > "$stage/ferry.exe"
printf "MZ placeholder PocoFoundation64.dll\n" > "$stage/PocoFoundation64.dll"
cp "$build/packaging/msi/ferry.ini" "$stage/ferry.ini"
mapfile -t plugins < "$build/packaging/msi/plugins.txt"
((${#plugins[@]})) || fail "no plugins listed in $build/packaging/msi/plugins.txt"
for p in "${plugins[@]}"; do printf 'MZ placeholder %s\n' "$p" > "$stage/plugins/$p.dll"; done

"$src/packaging/msi/build-msi.sh" "$stage" 0.1.0 "$work/ferry.msi" 2> "$work/wixl.err" ||
  { cat "$work/wixl.err"; fail "build-msi.sh failed"; }
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
row File Runtime_PocoFoundation64.dll Runtime_PocoFoundation64 PocoFoundation64.dll
grep -q $'^Runtime_PocoFoundation64\t{[0-9A-F-]*}\tINSTALLDIR\t' "$work/Component.idt" || fail "runtime DLL not beside ferry.exe"
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
