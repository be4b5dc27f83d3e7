#!/usr/bin/env bash
# Makes `apt-get source` work for Debian's own archive: adds a deb-src entry for every Debian
# (deb.debian.org / security.debian.org) entry the machine's APT sources already name
# (/etc/apt/sources.list.d/debian.sources in deb822 form, or one-line entries in
# /etc/apt/sources.list), in /etc/apt/sources.list.d/ferry-deb-src.sources, then `apt-get update`.
# Nothing is done when `apt-get source` already knows the package given as $1.
set -euo pipefail
probe=${1:-poco}
if apt-cache showsrc "$probe" 2>/dev/null | grep -q '^Package:'; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
  [ "$(basename "$f")" = ferry-deb-src.sources ] && continue
  # deb822 stanzas: keep those of type deb on a debian.org URI, as deb-src.
  awk -v RS= -v ORS='\n\n' '/(^|\n)Types:([^\n]* )?deb( |\n|$)/ && /(^|\n)URIs:[^\n]*debian\.org/ {
      sub(/(^|\n)Enabled:[^\n]*/, ""); sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >> "$out"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  [ "$(basename "$f")" = ferry-deb-src.list ] && continue
  # one-line entries: `deb [opts] http://deb.debian.org/... suite components` -> deb-src
  { grep -E '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^ ]*debian\.org' "$f" || true; } |
    sed -E 's/^deb([[:space:]])/deb-src\1/' >> "$out.list"
done
if [ -s "$out.list" ]; then $SUDO install -m 644 "$out.list" /etc/apt/sources.list.d/ferry-deb-src.list; fi
rm -f "$out.list"
if [ -s "$out" ]; then $SUDO install -m 644 "$out" /etc/apt/sources.list.d/ferry-deb-src.sources; fi
echo "debsrc: enabled deb-src for Debian's archive; apt-get update" >&2
$SUDO apt-get update -q >&2
apt-cache showsrc "$probe" 2>/dev/null | grep -q '^Package:' ||
  { echo "debsrc: apt-get source still does not know '$probe'" >&2; exit 1; }
