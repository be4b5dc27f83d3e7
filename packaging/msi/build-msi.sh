#!/usr/bin/env bash
# Builds Ferry's MSI with wixl (Debian package `wixl`, from msitools) on Linux.
#
#   packaging/msi/build-msi.sh STAGE_DIR VERSION OUT.msi
#
# STAGE_DIR holds the Windows files: ferry.exe, ferry.ini (the generated Windows config,
# build/packaging/msi/ferry.ini), plugins/<name>.dll, and the DLLs ferry.exe needs (Poco,
# OpenSSL, libpq, simdjson, the MSVC runtime unless it is installed separately) as *.dll beside
# ferry.exe. One MSI component is generated per DLL found (stable GUIDs derived from the file
# name, so upgrades match them).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 STAGE_DIR VERSION OUT.msi" >&2
  exit 64
fi
stage=$(cd "$1" && pwd)
version=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
command -v wixl >/dev/null || { echo "build-msi.sh: wixl not found: apt-get install wixl msitools" >&2; exit 69; }
for f in ferry.exe ferry.ini; do
  [ -f "$stage/$f" ] || { echo "build-msi.sh: $stage/$f is missing" >&2; exit 66; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/ferry.wxs" "$work/"
# wixl resolves Source paths relative to the .wxs (absolute ones fail): link the stage beside it.
ln -s "$stage" "$work/stage"
guid() {  # a name-based GUID: the same DLL keeps its component GUID across releases
  local h
  h=$(printf 'ferry-msi-plugin:%s' "$1" | sha1sum | cut -c1-32)
  echo "${h:0:8}-${h:8:4}-5${h:13:3}-a${h:17:3}-${h:20:12}" | tr a-f A-F
}
{
  echo '<?xml version="1.0" encoding="utf-8"?>'
  echo '<Include>'
  echo '  <DirectoryRef Id="PLUGINDIR">'
  shopt -s nullglob
  refs=()
  for dll in "$stage"/plugins/*.dll; do
    name=$(basename "$dll" .dll)
    id="Plugin_${name//[^A-Za-z0-9_]/_}"
    echo "    <Component Id=\"$id\" Guid=\"$(guid "$name")\" Win64=\"yes\">"
    echo "      <File Id=\"$id.dll\" Name=\"$name.dll\" Source=\"stage/plugins/$name.dll\" KeyPath=\"yes\" />"
    echo "    </Component>"
    refs+=("$id")
  done
  echo '  </DirectoryRef>'
  echo '  <DirectoryRef Id="INSTALLDIR">'
  for dll in "$stage"/*.dll; do
    name=$(basename "$dll" .dll)
    id="Runtime_${name//[^A-Za-z0-9_]/_}"
    echo "    <Component Id=\"$id\" Guid=\"$(guid "runtime:$name")\" Win64=\"yes\">"
    echo "      <File Id=\"$id.dll\" Name=\"$name.dll\" Source=\"stage/$name.dll\" KeyPath=\"yes\" />"
    echo "    </Component>"
    refs+=("$id")
  done
  echo '  </DirectoryRef>'
  echo '</Include>'
} > "$work/plugins.wxi"
{
  echo '<?xml version="1.0" encoding="utf-8"?>'
  echo '<Include>'
  for id in "${refs[@]}"; do echo "  <ComponentRef Id=\"$id\" />"; done
  echo '</Include>'
} > "$work/plugin-refs.wxi"
ls "$stage"/plugins/*.dll >/dev/null 2>&1 || { echo "build-msi.sh: no plugins in $stage/plugins" >&2; exit 66; }

# wixl warns (GLib) that it ignores NeverOverwrite/Permanent: expected, fixed up below.
wixl --arch x64 -D Version="$version" -D StageDir=stage -I "$work" -o "$out" "$work/ferry.wxs"
# wixl drops NeverOverwrite and Permanent: set them in the Component table afterwards
# (msidbComponentAttributes64bit 256 + Permanent 16 + NeverOverwrite 128), so that an upgrade
# never replaces the operator's config and an uninstall leaves it.
msibuild "$out" -q "UPDATE Component SET Attributes = 400 WHERE Component = 'FerryConfig'"
echo "build-msi.sh: wrote $out (${#refs[@]} DLLs)"
