#!/usr/bin/env bash
# The Debian packages end to end, on this machine, as root:
#   cpack -G DEB in the build tree (into a temp dir) -> contents and control checks ->
#   apt-get install ./ferry_*.deb ./ferry-dev_*.deb -> user, modes, conffile, `ferry check`,
#   the unit -> upgrade to release 2 (edited config and state kept, systemd calls) ->
#   the SDK example built against the INSTALLED SDK and run by /usr/bin/ferry ->
#   a plugin with another ABI refused -> purge leaves nothing (the user is kept, by design).
# Cleans up whatever happens: purges the packages, removes the user if this test created it,
# removes a fake /run/systemd/system it made.
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
  apt-get purge -y -q ferry-dev ferry >/dev/null 2>&1
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
echo "$deb"; echo "$dev"

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
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for d in adduser libpocofoundation libc6; do   # libpoco*/libc6 come from dpkg-shlibdeps
  [[ "$depends" == *"$d"* ]] || fail "Depends lacks $d (shlibdeps?)"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/ferry/ferry.ini ||
  fail "ferry.ini is not in conffiles"

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

step "apt-get install ./ferry ./ferry-dev"
apt-get "${apt_path[@]}" install -y -q --no-install-recommends "$deb" "$dev" \
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
  "$work"/pkg2/ferry-dev_*-2_amd64.deb > "$work/apt2.log" 2>&1 || { cat "$work/apt2.log"; fail "upgrade failed"; }
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
grep -q "ABI 2.99" "$work/abi.out" && grep -q "ABI 2.0\b" "$work/abi.out" || fail "the message does not name both ABI versions"

step "purge leaves nothing behind"
: > "$work/systemctl.log"
apt-get "${apt_path[@]}" purge -y -q ferry-dev ferry > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge failed"; }
for p in /etc/ferry /var/lib/ferry /var/spool/ferry /usr/lib/ferry /lib/systemd/system/ferry.service \
         /usr/bin/ferry /usr/include/ferry /usr/lib/libferry_mapping.a /usr/share/cmake/Ferry /usr/share/doc/ferry /usr/share/doc/ferry-dev; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
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
echo
echo "deb_test: all checks passed"
