#!/usr/bin/env bash
# The Debian packages end to end, on this machine, as root:
#   cpack -G DEB in the build tree (into a temp dir) -> contents and control checks -> lintian ->
#   apt-get install ./ferry_*.deb ./ferry-dev_*.deb ./ferry-dbgsym_*.ddeb -> user, modes,
#   conffile, `ferry check` -> licence, copyright, changelog, docs and their links, stripped
#   binaries and their debug symbols, the man page and the bash completion against the installed
#   ferry's own help -> the unit -> upgrade to release 2 (edited config and state kept, systemd
#   calls) -> the SDK example built against the INSTALLED SDK and run by /usr/bin/ferry ->
#   a plugin with another ABI refused -> purge keeps the files waiting in the spool and removes
#   everything else (the user is kept, by design) -> purge removes an empty spool.
# Cleans up whatever happens: purges the packages, removes the spool (it did not exist before),
# removes the user if this test created it, removes a fake /run/systemd/system it made.
#
#   deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "deb_test: needs root (it installs packages; CI runs the tests as root): skipped"
  exit 77
fi
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "installed\|config-files" ||
   dpkg-query -W -f='${Status}' ferry-dev 2>/dev/null | grep -q "installed\|config-files"; then
  echo "deb_test: FAIL: ferry is already installed on this machine; not touching it" >&2
  exit 1
fi
for p in /etc/ferry /var/lib/ferry /var/spool/ferry /usr/lib/ferry /lib/systemd/system/ferry.service; do
  if [ -e "$p" ]; then echo "deb_test: FAIL: $p exists without the package; not touching it" >&2; exit 1; fi
done

export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d /tmp/ferry-deb-test.XXXXXX)
chmod 0755 "$work"
user_existed=no
getent passwd ferry >/dev/null && user_existed=yes
fake_systemd=no

fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }
step() { echo; echo "=== $*"; }
cleanup() {
  set +e
  apt-get purge -y -q ferry-dbgsym ferry-dev ferry >/dev/null 2>&1
  rm -rf /var/spool/ferry   # kept by purge while it holds files; absent before this test
  if [ "$user_existed" = no ]; then
    getent passwd ferry >/dev/null && userdel ferry
    getent group ferry >/dev/null && groupdel ferry
  fi
  if [ "$fake_systemd" = yes ]; then
    rmdir /run/systemd/system 2>/dev/null
    [ -f "$work/made-run-systemd" ] && rmdir /run/systemd 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "cpack -G DEB in $build"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg1" > "$work/cpack1.log" 2>&1 ||
  { cat "$work/cpack1.log"; fail "cpack failed"; }
deb=$(ls "$work"/pkg1/ferry_*_amd64.deb) dev=$(ls "$work"/pkg1/ferry-dev_*_amd64.deb)
dbg=$(ls "$work"/pkg1/ferry-dbgsym_*_amd64.ddeb)
echo "$deb"; echo "$dev"; echo "$dbg"
for p in "$deb" "$dev" "$dbg"; do
  echo "$(dpkg-deb -f "$p" Package): Installed-Size $(dpkg-deb -f "$p" Installed-Size) KiB"
done

step "package contents and control fields"
dpkg-deb -c "$deb" | awk '{print $6}' > "$work/ferry.list"
dpkg-deb -c "$dev" | awk '{print $6}' > "$work/ferry-dev.list"
for f in ./usr/bin/ferry ./etc/ferry/ferry.ini ./lib/systemd/system/ferry.service; do
  grep -qx "$f" "$work/ferry.list" || fail "ferry package lacks $f"
done
# Exactly the in-tree plugins of the build tree; no test or loader plugin (NO_INSTALL).
(cd "$build/lib/ferry/plugins" && ls *.so | sed 's|^|./usr/lib/ferry/plugins/|') | sort > "$work/want.so"
grep '\.so$' "$work/ferry.list" | sort > "$work/have.so"
diff -u "$work/want.so" "$work/have.so" || fail "plugins in the package differ from the build's"
if grep -E 'test_|loader_|test-plugins|broken' "$work/ferry.list" "$work/ferry-dev.list"; then
  fail "a test plugin is packaged"
fi
for f in ./usr/include/ferry/abi.h ./usr/include/ferry/plugin.hpp ./usr/include/ferry/version.h \
         ./usr/include/ferry/mapping.hpp ./usr/include/ferry/testing/fake_host.hpp \
         ./usr/lib/libferry_mapping.a \
         ./usr/share/cmake/Ferry/FerryConfig.cmake ./usr/share/cmake/Ferry/FerryConfigVersion.cmake \
         ./usr/share/cmake/Ferry/FerryPlugin.cmake ./usr/share/cmake/Ferry/FerryTargets.cmake \
         ./usr/share/doc/ferry-dev/examples/sink_json_lines/CMakeLists.txt; do
  grep -qx "$f" "$work/ferry-dev.list" || fail "ferry-dev package lacks $f"
done
# Licence, copyright, changelog and docs in both packages; every plugin README, the SDK's and the
# example configs in ferry; the man page and the bash completion.
for p in ferry ferry-dev; do
  for f in copyright LICENSE changelog.Debian.gz README.md; do
    grep -qx "./usr/share/doc/$p/$f" "$work/$p.list" || fail "$p package lacks /usr/share/doc/$p/$f"
  done
done
for f in "$src"/plugins/*/README.md "$src/sdk/README.md" "$src/packaging/README.md" \
  "$src/packaging/windows/README.md"; do
  grep -qx "./usr/share/doc/ferry/${f#"$src"/}" "$work/ferry.list" ||
    fail "ferry package lacks /usr/share/doc/ferry/${f#"$src"/}"
done
for f in "$src"/config/*.ini; do
  grep -qx "./usr/share/doc/ferry/examples/$(basename "$f")" "$work/ferry.list" ||
    fail "ferry package lacks the example /usr/share/doc/ferry/examples/$(basename "$f")"
done
for f in ./usr/share/man/man1/ferry.1.gz ./usr/share/bash-completion/completions/ferry; do
  grep -qx "$f" "$work/ferry.list" || fail "ferry package lacks $f"
done
[ "$(dpkg-deb -f "$dbg" Package)" = ferry-dbgsym ] || fail "$dbg is not ferry-dbgsym"
[ "$(dpkg-deb -f "$dbg" Depends)" = "ferry (= $(dpkg-deb -f "$deb" Version))" ] ||
  fail "ferry-dbgsym depends on '$(dpkg-deb -f "$dbg" Depends)', want exactly this ferry"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for d in adduser libpocofoundation libc6; do   # libpoco*/libc6 come from dpkg-shlibdeps
  [[ "$depends" == *"$d"* ]] || fail "Depends lacks $d (shlibdeps?)"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/ferry/ferry.ini ||
  fail "ferry.ini is not in conffiles"

step "lintian"
lintian --fail-on error "$deb" "$dev" "$dbg" > "$work/lintian.log" 2>&1 ||
  { cat "$work/lintian.log"; fail "lintian reports errors"; }
cat "$work/lintian.log"

# Maintainer scripts with systemd "running": a logging systemctl in PATH and a fake
# /run/systemd/system, only when this machine has no systemd running (a container, CI).
mkdir -p "$work/shim"
if [ ! -d /run/systemd/system ]; then
  [ -d /run/systemd ] || touch "$work/made-run-systemd"
  mkdir -p /run/systemd/system
  fake_systemd=yes
  cat > "$work/shim/systemctl" <<SHIM
#!/bin/sh
echo "systemctl \$*" >> "$work/systemctl.log"
exit 0
SHIM
  chmod +x "$work/shim/systemctl"
fi
touch "$work/systemctl.log"
# apt runs dpkg (and so the maintainer scripts) with PATH set from DPkg::Path.
apt_path=(-o "DPkg::Path=$work/shim:/usr/sbin:/usr/bin:/sbin:/bin")

step "apt-get install ./ferry ./ferry-dev ./ferry-dbgsym"
apt-get "${apt_path[@]}" install -y -q --no-install-recommends "$deb" "$dev" "$dbg" \
  > "$work/apt1.log" 2>&1 || { cat "$work/apt1.log"; fail "apt-get install failed"; }
grep -i "warning\|error" "$work/apt1.log" | grep -v "^W: Download is performed unsandboxed" || true

step "installed: version, user, modes, conffile, check"
/usr/bin/ferry --version | tee /dev/stderr | grep -q "$(dpkg-query -W -f='${Version}' ferry | cut -d- -f1)" ||
  fail "ferry --version does not name the package version"
getent passwd ferry | tee /dev/stderr | grep -q ':/var/lib/ferry:/usr/sbin/nologin$' ||
  fail "user ferry missing or wrong home/shell"
[ "$(id -u ferry)" -lt 1000 ] || fail "ferry is not a system user"
[ "$(stat -c '%a %U:%G' /etc/ferry/ferry.ini)" = "640 root:ferry" ] ||
  fail "/etc/ferry/ferry.ini is $(stat -c '%a %U:%G' /etc/ferry/ferry.ini), want 640 root:ferry"
[ "$(stat -c '%a %U:%G' /etc/ferry)" = "750 root:ferry" ] || fail "/etc/ferry is $(stat -c '%a %U:%G' /etc/ferry)"
[ "$(stat -c '%a %U:%G' /var/lib/ferry)" = "750 ferry:ferry" ] || fail "/var/lib/ferry is $(stat -c '%a %U:%G' /var/lib/ferry)"
[ "$(stat -c '%a %U:%G' /var/spool/ferry)" = "750 ferry:ferry" ] || fail "/var/spool/ferry is $(stat -c '%a %U:%G' /var/spool/ferry)"
conffiles=$(dpkg-query -W -f='${Conffiles}' ferry)
echo "Conffiles:$conffiles"
echo "$conffiles" | grep -Eq '^ /etc/ferry/ferry.ini [0-9a-f]{32}$' || fail "ferry.ini not a registered conffile"
grep -qx 'journal = /var/lib/ferry/journal.db' /etc/ferry/ferry.ini || fail "journal path"
/usr/bin/ferry check | tee "$work/check.out"          # default config: /etc/ferry/ferry.ini
grep -q "0 source(s) and 0 sink(s) enabled" "$work/check.out" || fail "shipped config enables something"
runuser -u ferry -- /usr/bin/ferry check --config /etc/ferry/ferry.ini >/dev/null ||
  fail "the ferry user cannot check the shipped config"
if runuser -u nobody -- cat /etc/ferry/ferry.ini >/dev/null 2>&1; then
  fail "another user can read the config (secrets)"
fi
/usr/bin/ferry plugins > "$work/plugins.out"
python3 "$here/check_config.py" "$work/plugins.out" /etc/ferry/ferry.ini

step "licence, copyright, changelog, docs"
cmp "$src/LICENSE" /usr/share/common-licenses/Apache-2.0 || fail "LICENSE is not the Apache-2.0 text"
version=$(dpkg-query -W -f='${Version}' ferry)
for p in ferry ferry-dev; do
  d=/usr/share/doc/$p
  cmp "$src/LICENSE" "$d/LICENSE" || fail "$d/LICENSE differs from LICENSE"
  head -n 1 "$d/copyright" | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
    fail "$d/copyright is not machine-readable (DEP-5)"
  grep -qx 'Files: \*' "$d/copyright" && grep -qx 'License: Apache-2.0' "$d/copyright" &&
    grep -q '/usr/share/common-licenses/Apache-2.0' "$d/copyright" || fail "$d/copyright: no Apache-2.0 for all files"
  zcat "$d/changelog.Debian.gz" | head -n 1 | grep -q "^ferry ($version) " ||
    fail "$d/changelog.Debian.gz: the latest entry is not $version: $(zcat "$d/changelog.Debian.gz" | head -n 1)"
done
cmp "$src/sdk/README.md" /usr/share/doc/ferry-dev/README.md || fail "ferry-dev's README.md is not sdk/README.md"
for f in "$src"/config/*.ini; do
  cmp "$f" "/usr/share/doc/ferry/examples/$(basename "$f")" || fail "example $(basename "$f") differs"
done
# Every relative link between the installed READMEs leads somewhere (they keep the repository's
# layout; config/ is examples/).
python3 - <<'PY' || fail "installed READMEs have broken links"
import pathlib, re, sys
bad = []
for md in pathlib.Path("/usr/share/doc").glob("ferry*/**/*.md"):
    for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text(encoding="utf-8")):
        path = target.split("#")[0]
        if path and not re.match(r"^[a-z]+:", path) and not (md.parent / path).exists():
            bad.append(f"{md}: {target}")
print("\n".join(bad) or "README links: all resolve")
sys.exit(1 if bad else 0)
PY

step "stripped binaries, debug symbols in ferry-dbgsym"
for b in /usr/bin/ferry /usr/lib/ferry/plugins/*.so; do
  file "$b" | tee -a "$work/file.log" | grep -q ', stripped$' || fail "$b is not stripped: $(file "$b")"
  id=$(readelf -n "$b" | sed -n 's/^ *Build ID: //p')
  [ -n "$id" ] || fail "$b has no build id"
  debug=/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
  file "$debug" | grep -q 'with debug_info, not stripped' || fail "no debug symbols for $b at $debug"
done
sed 's/, BuildID.*,/,/' "$work/file.log"
dpkg --verify ferry ferry-dev ferry-dbgsym || fail "dpkg --verify (md5sums) fails"

step "man page: ferry(1) carries the installed ferry's help"
[ "$(man -w ferry)" = /usr/share/man/man1/ferry.1.gz ] || fail "man -w ferry: $(man -w ferry)"
MANWIDTH=120 man --warnings -E UTF-8 -l /usr/share/man/man1/ferry.1.gz > "$work/man.txt" 2> "$work/man.err"
[ ! -s "$work/man.err" ] || { cat "$work/man.err"; fail "groff warnings in ferry(1)"; }
# The commands as `ferry --help` lists them (its Commands: table), and `help`.
/usr/bin/ferry --help > "$work/help.txt"
awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {print $1}' "$work/help.txt" | sort -u > "$work/commands"
grep -q 'ferry help <command>' "$work/help.txt" && echo help >> "$work/commands"
for c in run check plugins status positions sources sinks dead-letters trace help; do
  grep -qx "$c" "$work/commands" || fail "ferry --help does not list $c"
done
mkdir -p "$work/help"
while read -r c; do
  [ "$c" = help ] || /usr/bin/ferry help "$c" > "$work/help/$c"
done < "$work/commands"
# Each command's help, each row of the Commands and Options tables, is in the man page
# (whitespace and line breaks aside; `code` is set in bold there).
python3 - "$work/man.txt" "$work/help.txt" "$work"/help/* <<'PY' || fail "ferry(1) differs from ferry's help"
import re, sys
norm = lambda t: " ".join(t.replace("`", "").replace("\u2010", "-").replace("\u2212", "-").split())
man = norm(open(sys.argv[1], encoding="utf-8").read())
main = open(sys.argv[2], encoding="utf-8").read()
pieces, table = [], None
for line in main.splitlines():
    if line in ("Commands:", "Options:"):
        table = True
    elif not line.strip():
        table = None
    elif table and not line.startswith(" " * 7):
        pieces.append(line)
    elif table:
        pieces[-1] += " " + line
for path in sys.argv[3:]:
    pieces += open(path, encoding="utf-8").read().split("\n\n")
missing = [p for p in pieces if norm(p) not in man]
for p in missing:
    print("not in ferry(1):", norm(p))
print(f"ferry(1): {len(pieces) - len(missing)} of {len(pieces)} help texts found")
sys.exit(1 if missing else 0)
PY
for c in $(cat "$work/commands"); do
  grep -Eq "^ +ferry $c$" "$work/man.txt" || [ "$c" = help ] || fail "ferry(1) has no section for $c"
done

step "bash completion: commands, subcommands, options and names"
completions() { "$here/complete.sh" ferry "$@"; }
want() {  # want "WORDS" candidate... : the completion of WORDS offers at least these
  local line=$1; shift
  local got; got=$(eval "completions $line" | tr '\n' ' ')
  echo "ferry $line -> $got"
  for w in "$@"; do [[ " $got " == *" $w "* ]] || fail "completing 'ferry $line' does not offer $w: $got"; done
}
[ "$(completions '')" = "$(sort "$work/commands")" ] ||
  fail "completing 'ferry ' offers $(completions '' | tr '\n' ' '), ferry --help lists $(sort "$work/commands" | tr '\n' ' ')"
want "help ''" run positions sources sinks dead-letters trace
want "sources ''" backfill reset
want "sinks ''" rewind pause resume forget
want "dead-letters ''" list show replay drop
want "run --" --once --config --plugin-dir --help
want "sinks rewind erp --to" --to --to-sequence
want "dead-letters replay --" --sink --id
# Every option any help text names is offered after its command (and subcommand).
for c in $(cat "$work/commands"); do
  [ "$c" = help ] && continue
  subs=$(completions "$c" '')
  offered=$( (completions "$c" --; for s in $subs; do completions "$c" "$s" --; done) | sort -u | tr '\n' ' ')
  for o in $(grep -o -- '--[a-z][a-z-]*' "$work/help/$c" | sort -u); do
    [[ " $offered " == *" $o "* ]] || fail "completion does not offer $o after 'ferry $c'"
  done
done
printf '[host]\njournal = /x\n[source.orders]\n[sink.erp]\n[sink.rest]\n' > "$work/names.ini"
[ "$(completions -c "$work/names.ini" sinks pause '' | tr '\n' ' ')" = "erp rest " ] ||
  fail "completing a sink name: $(completions -c "$work/names.ini" sinks pause '')"
[ "$(completions --config "$work/names.ini" sources backfill '')" = orders ] ||
  fail "completing a source name: $(completions --config "$work/names.ini" sources backfill '')"
[ "$(FERRY_CONFIG=$work/names.ini completions dead-letters list --sink '' | tr '\n' ' ')" = "erp rest " ] ||
  fail "completing --sink from \$FERRY_CONFIG"
want "-c $work/names.i" "$work/names.ini"

step "systemd unit"
unit=/lib/systemd/system/ferry.service
for k in 'User=ferry' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
         'ReadWritePaths=/var/lib/ferry /var/spool/ferry' 'ExecStart=/usr/bin/ferry run --config /etc/ferry/ferry.ini' \
         'StandardError=journal' 'SyslogLevelPrefix=yes' 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qx "$k" "$unit" || fail "unit lacks $k"
done
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
if [ "$fake_systemd" = yes ]; then
  cat "$work/systemctl.log"
  grep -q "daemon-reload" "$work/systemctl.log" || fail "postinst did not reload systemd"
  if grep -q "restart\|start ferry\|enable" "$work/systemctl.log"; then
    fail "a fresh install must not start or enable the service"
  fi
fi

step "upgrade to release 2 keeps the edited config and the state"
printf '\n; edited by the operator\n' >> /etc/ferry/ferry.ini
echo keep > /var/lib/ferry/marker
echo keep > /var/spool/ferry/marker
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg2" -D CPACK_DEBIAN_PACKAGE_RELEASE=2 \
  > "$work/cpack2.log" 2>&1 || { cat "$work/cpack2.log"; fail "cpack (release 2) failed"; }
: > "$work/systemctl.log"
apt-get "${apt_path[@]}" install -y -q --no-install-recommends "$work"/pkg2/ferry_*-2_amd64.deb \
  "$work"/pkg2/ferry-dev_*-2_amd64.deb "$work"/pkg2/ferry-dbgsym_*-2_amd64.ddeb > "$work/apt2.log" 2>&1 || { cat "$work/apt2.log"; fail "upgrade failed"; }
dpkg-query -W -f='${Version}\n' ferry | grep -q -- '-2$' || fail "not upgraded"
grep -q '^; edited by the operator$' /etc/ferry/ferry.ini || fail "upgrade lost the edited config"
[ -f /var/lib/ferry/marker ] && [ -f /var/spool/ferry/marker ] || fail "upgrade lost the state"
[ "$(stat -c '%a %U:%G' /etc/ferry/ferry.ini)" = "640 root:ferry" ] || fail "upgrade changed the config's mode"
if [ "$fake_systemd" = yes ]; then
  cat "$work/systemctl.log"
  grep -q "try-restart ferry.service" "$work/systemctl.log" || fail "upgrade did not try-restart the service"
  grep -q "stop ferry.service" "$work/systemctl.log" && fail "upgrade stopped the service in prerm"
fi
rm -f /var/lib/ferry/marker /var/spool/ferry/marker

step "the example sink, built against the installed SDK (copied out of /usr/share/doc)"
cp -r /usr/share/doc/ferry-dev/examples/sink_json_lines "$work/example"
gen=(); command -v make >/dev/null || gen=(-G Ninja)
(cd "$work/example" && env -u CMAKE_PREFIX_PATH -u Ferry_DIR cmake "${gen[@]}" -S . -B build > "$work/ex-cmake.log" 2>&1 &&
  cmake --build build > "$work/ex-build.log" 2>&1) || { cat "$work"/ex-*.log; fail "the example does not build"; }
# Its unit test: the built plugin in the installed fake host (Ferry::testing).
(cd "$work/example/build" && ctest --output-on-failure > "$work/ex-test.log" 2>&1) ||
  { cat "$work/ex-test.log"; fail "the example's unit test fails"; }
grep -q "100% tests passed, 0 tests failed out of [1-9]" "$work/ex-test.log" ||
  { cat "$work/ex-test.log"; fail "the example's unit test did not run"; }
# An outsider's sink on the installed mapping library (Ferry::mapping), run below.
cp -r "$here/mapping_sink" "$work/mapping_sink"
(env -u CMAKE_PREFIX_PATH -u Ferry_DIR cmake "${gen[@]}" -S "$work/mapping_sink" -B "$work/mapping_sink/build" > "$work/ms.log" 2>&1 &&
  cmake --build "$work/mapping_sink/build" >> "$work/ms.log" 2>&1) || { cat "$work/ms.log"; fail "the mapping sink does not build"; }
grep -qx 'Ferry_DIR:PATH=/usr/share/cmake/Ferry' "$work/example/build/CMakeCache.txt" ||
  fail "the example did not use the installed SDK: $(grep Ferry_DIR "$work/example/build/CMakeCache.txt")"
if grep -rq "$src" "$work/example/build/CMakeCache.txt" "$work/example/build"/*.ninja "$work/example/build"/Makefile 2>/dev/null; then
  fail "the example build refers to the source tree"
fi
# The version file: an SDK from another minor release is refused.
mkdir -p "$work/vcheck"
printf 'cmake_minimum_required(VERSION 3.25)\nproject(v NONE)\nfind_package(Ferry 9.0 REQUIRED)\n' > "$work/vcheck/CMakeLists.txt"
if cmake -S "$work/vcheck" -B "$work/vcheck/build" > "$work/vcheck.log" 2>&1; then
  fail "find_package(Ferry 9.0) accepted the installed $(dpkg-query -W -f='${Version}' ferry-dev)"
fi
grep -q "/usr/share/cmake/Ferry/FerryConfig.cmake, version: " "$work/vcheck.log" || { cat "$work/vcheck.log"; fail "no version mismatch message"; }

step "run the installed ferry: test_source -> sink_json_lines, sink_mapped_lines"
mkdir -p "$work/plugins" "$work/run"
cp "$work/example/build/sink_json_lines.so" "$build/test-plugins/test_source.so" \
  "$work/mapping_sink/build/sink_mapped_lines.so" "$work/plugins/"
cat > "$work/run/ferry.ini" <<INI
[host]
journal = $work/run/journal.db
plugin_dir = $work/plugins

[source.orders]
plugin = test_source
data = $here/orders.jsonl
start_from = 2026-01-01T00:00:00Z

[sink.jsonl]
plugin = sink_json_lines
path = $work/run/events.jsonl

[sink.mapped]
plugin = sink_mapped_lines
path = $work/run/mapped.txt
columns = id=/id; status=/status; total=amount(/total); version=\$version
INI
/usr/bin/ferry check --config "$work/run/ferry.ini"
/usr/bin/ferry run --once --config "$work/run/ferry.ini" 2> "$work/run.log" || { cat "$work/run.log"; fail "ferry run --once"; }
grep -q "built with Ferry SDK" "$work/run.log" || { cat "$work/run.log"; fail "the example sink did not log"; }
python3 - "$work/run/events.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
events = [json.loads(l) for l in lines]
got = [(e["key"], e["version"], e["body"]["status"]) for e in events]
want = [("ord-2", "2026-07-05T10:00:01.000Z", "new"), ("ord-1", "2026-07-05T10:05:00.000Z", "confirmed")]
assert got == want, got
assert events[0]["id"] == "orders/order/ord-2/2026-07-05T10:00:01.000Z", events[0]["id"]
assert events[0]["body"]["note"] == 'tab\tand "quotes"', events[0]["body"]
assert events[0]["previous"] is None and events[0]["source"] == "orders" and events[0]["echo"] is False
assert events[0]["sequence"] < events[1]["sequence"]
print(f"events.jsonl: {len(events)} lines as expected")
PY
printf 'id|status|total|version\nord-2|new||2026-07-05T10:00:01.000Z\nord-1|confirmed|12.50|2026-07-05T10:05:00.000Z\n' > "$work/mapped.want"
diff -u "$work/mapped.want" "$work/run/mapped.txt" || fail "the mapping sink wrote other rows"

step "a plugin that needs a newer ABI is refused by name"
cp -r "$here/abi_mismatch" "$work/abi"
(cmake "${gen[@]}" -S "$work/abi" -B "$work/abi/build" > "$work/abi.log" 2>&1 &&
  cmake --build "$work/abi/build" >> "$work/abi.log" 2>&1) || { cat "$work/abi.log"; fail "abi_mismatch plugin does not build"; }
mkdir -p "$work/abi-plugins"
cp "$work/abi/build/sink_abi_mismatch.so" "$work/abi-plugins/"
set +e
/usr/bin/ferry plugins --plugin-dir "$work/abi-plugins" > "$work/abi.out" 2>&1
rc=$?
set -e
cat "$work/abi.out"
[ "$rc" -eq 78 ] || fail "ferry plugins exited $rc on an ABI mismatch, want 78"
grep -q "$work/abi-plugins/sink_abi_mismatch.so" "$work/abi.out" || fail "the message does not name the file"
grep -q "ABI 2.99" "$work/abi.out" && grep -q "ABI 2\.1\b" "$work/abi.out" || fail "the message does not name both ABI versions"

step "purge keeps the files waiting in the spool, names them, and removes everything else"
# A CSV the ERP has not imported yet, and empty drop folders.
install -d -o ferry -g ferry /var/spool/ferry/erp /var/spool/ferry/empty/nested
printf 'id,status\nord-1,new\n' > /var/spool/ferry/erp/orders-000001.csv
: > "$work/systemctl.log"
apt-get "${apt_path[@]}" purge -y -q ferry-dbgsym ferry-dev ferry > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge failed"; }
sed -i 's/\r$//' "$work/purge.log"   # apt runs dpkg on a terminal: CR LF
grep "ferry:\|^  /var/spool" "$work/purge.log" || true
[ "$(cat /var/spool/ferry/erp/orders-000001.csv 2>/dev/null)" = $'id,status\nord-1,new' ] ||
  fail "purge deleted or changed a file waiting in /var/spool/ferry"
[ "$(find /var/spool/ferry | sort | tr '\n' ' ')" = "/var/spool/ferry /var/spool/ferry/erp /var/spool/ferry/erp/orders-000001.csv " ] ||
  fail "purge left more than the file and its folders: $(find /var/spool/ferry)"
grep -q '^ferry: purge kept /var/spool/ferry: it holds 1 file(s)' "$work/purge.log" &&
  grep -qx '  /var/spool/ferry/erp/orders-000001.csv' "$work/purge.log" ||
  { cat "$work/purge.log"; fail "purge did not say what it kept"; }
for p in /etc/ferry /var/lib/ferry /usr/lib/ferry /lib/systemd/system/ferry.service \
         /usr/bin/ferry /usr/include/ferry /usr/lib/libferry_mapping.a /usr/share/cmake/Ferry /usr/share/doc/ferry /usr/share/doc/ferry-dev \
         /usr/share/doc/ferry-dbgsym /usr/share/man/man1/ferry.1.gz /usr/share/bash-completion/completions/ferry; do
  [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after purge"
done
while read -r b; do
  [ ! -e "$b" ] || fail "$b (ferry-dbgsym) is left after purge"
done < <(dpkg-deb -c "$dbg" | awk '$6 ~ /\.debug$/ {print substr($6, 2)}')
if dpkg-statoverride --list | grep -q ferry; then fail "statoverrides left: $(dpkg-statoverride --list | grep ferry)"; fi
for p in ferry ferry-dev; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ -z "$st" ] || [ "$st" = not-installed ] || fail "$p is $st after purge"
done
if [ "$fake_systemd" = yes ]; then
  cat "$work/systemctl.log"
  grep -q "stop ferry.service" "$work/systemctl.log" || fail "remove did not stop the service"
fi
getent passwd ferry >/dev/null || fail "purge removed the user ferry (documented: kept)"
rm -r /var/spool/ferry   # what the operator does once the ERP has the file

step "purge removes an empty spool"
apt-get "${apt_path[@]}" install -y -q --no-install-recommends "$deb" > "$work/apt3.log" 2>&1 ||
  { cat "$work/apt3.log"; fail "apt-get install failed"; }
install -d -o ferry -g ferry /var/spool/ferry/erp   # an empty drop folder
apt-get "${apt_path[@]}" purge -y -q ferry > "$work/purge2.log" 2>&1 || { cat "$work/purge2.log"; fail "purge failed"; }
[ ! -e /var/spool/ferry ] || fail "purge left the empty spool: $(find /var/spool/ferry)"
if grep -q "purge kept" "$work/purge2.log"; then fail "purge reported keeping an empty spool"; fi
echo
echo "deb_test: all checks passed"
