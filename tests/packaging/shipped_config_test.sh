#!/usr/bin/env bash
# The generated configs (deb and msi): `ferry check` accepts them with the built plugins, and
# check_config.py finds every option of every plugin and every host setting documented.
set -euo pipefail
ferry=$1 plugin_dir=$2 generated=$3
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$ferry" plugins --plugin-dir "$plugin_dir" > "$out"
for flavour in deb msi; do
  ini=$generated/$flavour/ferry.ini
  echo "== $ini"
  "$ferry" check --config "$ini" --plugin-dir "$plugin_dir"
  python3 "$here/check_config.py" "$out" "$ini"
done
grep -qx 'journal = /var/lib/ferry/journal.db' "$generated/deb/ferry.ini"
grep -qx 'plugin_dir = /usr/lib/ferry/plugins' "$generated/deb/ferry.ini"
grep -qx ';dir = /var/spool/ferry/erp' "$generated/deb/ferry.ini"
echo "shipped configs OK"
