#!/usr/bin/env bash
# Ferry for Windows under Wine, end to end, from the MSI packaging/windows/build.sh built:
#   1. install it with Wine's msiexec into a private WINEPREFIX (a temporary folder);
#   2. ferry.exe --version, and `check` on the shipped config (C:\ProgramData\Ferry\ferry.ini),
#      and on one naming a PostgreSQL journal (refused: the Windows build has none);
#   3. `run --once` against the Linux DuckHub simulator over loopback into the ERP CSV folder, a
#      SQLite database (sink_sql) and sink_json_lines, the SDK example built here against the
#      Windows SDK zip (an outsider's plugin DLL): every order the simulator holds arrives once,
#      with its current version and status, cursors end at each venue's newest order, a second
#      pass writes nothing again (the assertions of the Linux backfill test);
#   4. the Windows service the MSI registered: started (`net start Ferry`), running the config,
#      owning the journal, delivering every order, stopped (`net stop Ferry`) cleanly;
#   5. uninstall: the program is gone, the service too, the operator's config and data stay.
# Everything runs in the temporary prefix; its wineserver is killed at the end, also on failure.
#
#   windows_test.sh SOURCE_DIR LINUX_BUILD_DIR WINDOWS_BUILD_DIR
set -euo pipefail
src=$1 build=$2 win=$3
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "windows_test: FAIL: $*" >&2; exit 1; }
step() { echo "== $* ($((SECONDS - t0)) s)"; }
t0=$SECONDS
command -v wine >/dev/null || fail "wine not found (scripts/setup installs wine and wine64)"
version=$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
msi=$win/ferry-$version-x64.msi
sdkzip=$win/ferry-sdk-$version-win64.zip
for f in "$msi" "$sdkzip"; do
  [ -f "$f" ] || fail "$f is missing: run packaging/windows/build.sh $build $win first (scripts/test does)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-wine.XXXXXX")
export WINEPREFIX=$work/prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  wineserver -k 2>/dev/null || true
  wineserver -w 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
c=$WINEPREFIX/drive_c
pf="$c/Program Files/Ferry"
pd=$c/ProgramData/Ferry
ferry() { wine 'C:\Program Files\Ferry\ferry.exe' "$@"; }

step "a fresh Wine prefix"
wineboot -i > "$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log"; fail "wineboot"; }

step "install $(basename "$msi")"
wine msiexec /i "$msi" /qn > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "msiexec /i"; }
for f in "$pf/ferry.exe" "$pd/ferry.ini"; do [ -f "$f" ] || fail "not installed: $f"; done
mapfile -t plugins < "$build/packaging/msi/plugins.txt"
for p in "${plugins[@]}"; do [ -f "$pf/plugins/$p.dll" ] || fail "plugin not installed: $p.dll"; done
for d in state spool log; do [ -d "$pd/$d" ] || fail "ProgramData\\Ferry\\$d not created"; done
# Wine's msiexec writes the service into the registry, but the running service manager
# (services.exe) only reads it when it starts: restart this prefix's Wine, as a reboot would.
# A persistent wineserver (-p): otherwise it shuts down, with services.exe and the service, a
# few seconds after the last ordinary Wine program ends.
wineserver -k && wineserver -w
wineserver -p > /dev/null 2>&1

step "ferry.exe --version, check on the shipped config"
# Wine's output goes to files, never to a pipe or $(...): Wine's own background processes (the
# persistent server's services.exe) would keep a pipe open and the reader waiting.
ferry --version > "$work/version.txt" 2>&1 || fail "ferry --version: $(cat "$work/version.txt")"
out=$(tr -d '\r' < "$work/version.txt")
[[ "$out" == "ferry $version (plugin ABI "* ]] || fail "ferry --version said: $out"
ferry check --config 'C:\ProgramData\Ferry\ferry.ini' > "$work/check.log" 2>&1 ||
  { cat "$work/check.log"; fail "ferry check on the shipped config"; }
# The Windows build has no PostgreSQL journal: a URL there is a configuration error naming the
# key, not a lock file named after the URL.
printf '[host]\njournal = postgresql://ferry:long-enough-secret@db1/ferry\n' > "$c/pg.ini"
set +e
ferry check --config 'C:\pg.ini' > "$work/pg.log" 2>&1
rc=$?
set -e
[ "$rc" = 78 ] && grep -q 'pg.ini: \[host\] journal: this ferry is built without the PostgreSQL' \
  "$work/pg.log" || fail "a PostgreSQL journal on Windows: exit $rc, $(cat "$work/pg.log")"
! grep -q long-enough-secret "$work/pg.log" || fail "the journal's password was shown"

step "the SDK example built against the Windows SDK, as an outsider builds it"
unzip -q "$sdkzip" -d "$work/sdk"
sdk=$(echo "$work"/sdk/ferry-sdk-*)
cp -r "$src/sdk/examples/sink_json_lines" "$work/example"
(cmake -S "$work/example" -B "$work/example/build" -G Ninja -DBUILD_TESTING=OFF \
   -DCMAKE_TOOLCHAIN_FILE="$sdk/share/cmake/Ferry/mingw-w64-x86_64.cmake" \
   -DFERRY_WIN_DEPS_PREFIX="$sdk" && cmake --build "$work/example/build") > "$work/example.log" 2>&1 ||
  { cat "$work/example.log"; fail "the example does not build against the Windows SDK"; }
grep -q "Ferry_DIR:PATH=$sdk/share/cmake/Ferry" "$work/example/build/CMakeCache.txt" ||
  fail "the example did not use the SDK: $(grep Ferry_DIR "$work/example/build/CMakeCache.txt")"
cp "$work/example/build/sink_json_lines.dll" "$pf/plugins/"

step "the DuckHub simulator (Linux) on loopback"
"$build/bin/duckhub-sim" --seed 11 --venues 2 --orders 60 --no-rate-limit --quiet \
  --port-file "$work/sim.port" --keys-file "$work/sim.keys" > "$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.1; done
[ -s "$work/sim.port" ] || { cat "$work/sim.log"; fail "the simulator did not start"; }
port=$(head -n1 "$work/sim.port")
key() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["venues"][int(sys.argv[2])]["api_key"])' "$work/sim.keys" "$1"; }

mkdir -p "$c/ferry-test/erp"
config() {  # config FILE JOURNAL_DIR LOG_LINE DATA_DIR: the test config, in Windows paths
  cat > "$1" <<INI
[host]
journal = $2\\journal.db
log_level = info
retry_initial = 50ms
retry_max = 1s
$3

[source.v1]
plugin = source_duckhub_orders
base_url = http://127.0.0.1:$port/v1
api_key = $(key 0)
interval = 200ms
start_from = 2026-07-01T00:00:00Z
page_size = 25
rate_limit = false

[source.v2]
plugin = source_duckhub_orders
base_url = http://127.0.0.1:$port/v1
api_key = $(key 1)
interval = 200ms
start_from = 2026-07-01T00:00:00Z
page_size = 25
rate_limit = false

[sink.erp]
plugin = sink_erp_csv
dir = $4\\erp
batch_delay = 100ms

[sink.db]
plugin = sink_sql
connector = sqlite
connection = $4\\erp.db
table = orders
batch_delay = 100ms

[sink.jsonl]
plugin = sink_json_lines
path = $4\\events.jsonl
INI
}
config "$c/ferry-test/ferry.ini" 'C:\ferry-test' "" 'C:\ferry-test'
# The default plugin folder (ferry.exe's plugins\) is used: the config names none.
expect_state() {  # expect_state WHAT: CSV, SQLite, JSON lines and status hold the simulator's state
  python3 - "$1" "$port" "$c/ferry-test" "$here/../plugins/duckhub/collect_csv.py" "$work/status.json" <<'PY'
import json, sqlite3, subprocess, sys, urllib.request
what, port, root, collect, status_file = sys.argv[1:]
state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/state"))
orders = {o["id"]: (v["venue"], o["updatedAt"], o["status"]) for v in state["venues"] for o in v["orders"]}
assert len(orders) == 120, f"{what}: the simulator holds {len(orders)} orders"
def check(name, got):  # got: id -> [(updated_at, status, previous)] in delivery order
    missing = [i for i in orders if i not in got]
    stale = [i for i in orders if i in got and got[i][-1][:2] != orders[i][1:]]
    foreign = [i for i in got if i not in orders]
    twice = [i for i in got if len(got[i]) != 1]
    assert not missing and not stale and not foreign and not twice, \
        f"{what}: {name}: missing {missing[:3]}, stale {stale[:3]}, foreign {foreign[:3]}, twice {twice[:3]}"
    assert all(r[2] == "" for rows in got.values() for r in rows), f"{what}: {name}: a previous version on a new order"
# The ERP CSV folder, read by Python's csv module: one row per order, nothing else in the folder.
folder = json.loads(subprocess.check_output([sys.executable, collect, root + "/erp"]))
assert not folder["others"], f"{what}: unexpected entries in the drop folder: {folder['others']}"
csv_rows = {}
for order_id, updated_at, st, previous, items, _ in folder["rows"]:
    csv_rows.setdefault(order_id, []).append((updated_at, st, previous))
check("CSV", csv_rows)
# SQLite: the mapped table, one row per order, and the changes table.
db = sqlite3.connect(root + "/erp.db")
table = {r[0]: [(r[1], r[2], "")] for r in db.execute("SELECT order_id, updated_at, status FROM orders")}
check("SQLite orders", table)
assert db.execute("SELECT COUNT(*) FROM ferry_changes").fetchone()[0] == 120, f"{what}: ferry_changes"
# The outsider's plugin: one JSON line per order.
events = [json.loads(l) for l in open(root + "/events.jsonl", encoding="utf-8")]
lines = {}
for e in events:
    lines.setdefault(e["key"], []).append((e["version"], e["body"]["status"], e["previous"] or ""))
check("JSON lines", lines)
# status --json: every cursor at its venue's newest order, nothing left behind.
st = json.load(open(status_file, encoding="utf-8"))
for src in st["sources"]:
    newest = max(u for (v, u, s) in orders.values() if v == src["name"])
    assert src["cursor"]["since"] == newest, f"{what}: {src['name']} cursor {src['cursor']} != {newest}"
for sink in st["sinks"]:
    assert sink["backlog"] == 0 and sink["dead_letters"] == 0, f"{what}: sink {sink}"
print(f"{what}: 120 orders once each in CSV, SQLite and JSON lines; cursors at the newest")
PY
}
status_json() {
  ferry status --json --config "$1" > "$work/status.raw" 2>/dev/null
  tr -d '\r' < "$work/status.raw" > "$work/status.json"
}

step "run --once into CSV, SQLite and the SDK plugin"
ferry run --once --config 'C:\ferry-test\ferry.ini' > "$work/run.log" 2>&1 || { cat "$work/run.log"; fail "run --once"; }
grep -q "built with Ferry SDK" "$work/run.log" || { cat "$work/run.log"; fail "the SDK plugin did not log"; }
status_json 'C:\ferry-test\ferry.ini'
expect_state "after run --once"
files=$(ls "$c/ferry-test/erp" | wc -l)
ferry run --once --config 'C:\ferry-test\ferry.ini' > "$work/run2.log" 2>&1 || { cat "$work/run2.log"; fail "second run --once"; }
[ "$(ls "$c/ferry-test/erp" | wc -l)" -eq "$files" ] || fail "the second pass wrote files again"
status_json 'C:\ferry-test\ferry.ini'
expect_state "after a second pass"

step "the service: net start Ferry with the config in ProgramData, every order arrives, net stop Ferry"
cp "$pd/ferry.ini" "$work/shipped.ini"
mkdir -p "$c/ferry-svc/erp"
config "$pd/ferry.ini" 'C:\ProgramData\Ferry\state' 'log_file = C:\ProgramData\Ferry\log\ferry.log' \
  'C:\ferry-svc'
wine net start Ferry > "$work/net-start.log" 2>&1 || { cat "$work/net-start.log"; cat "$pd/log/ferry.log" 2>/dev/null; fail "net start Ferry"; }
owner=
for _ in $(seq 1 100); do
  grep -q "running with" "$pd/log/ferry.log" 2>/dev/null && break
  sleep 0.2
done
grep -q "running with C:\\\\ProgramData\\\\Ferry\\\\ferry.ini" "$pd/log/ferry.log" ||
  { cat "$pd/log/ferry.log" 2>/dev/null; fail "the service did not start ferry run on ProgramData\\Ferry\\ferry.ini"; }
# The service owns the journal: `status` names its PID; a second `run` is refused (75).
ferry status --json --config 'C:\ProgramData\Ferry\ferry.ini' > "$work/svc-status.raw" 2>/dev/null
tr -d '\r' < "$work/svc-status.raw" > "$work/svc-status.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s.get("running") and s.get("pid"), s' "$work/svc-status.json" ||
  fail "status does not show the service running: $(cat "$work/svc-status.json")"
set +e; ferry run --once --config 'C:\ProgramData\Ferry\ferry.ini' > "$work/second.log" 2>&1; rc=$?; set -e
[ "$rc" -eq 75 ] || { cat "$work/second.log"; fail "a second run beside the service exited $rc, want 75"; }
# Everything arrives while the service runs.
orders_in() {  # the number of distinct orders in the CSV files of a folder
  python3 "$here/../plugins/duckhub/collect_csv.py" "$1" |
    python3 -c 'import json,sys; print(len({r[0] for r in json.load(sys.stdin)["rows"]}))'
}
for _ in $(seq 1 150); do
  [ "$(orders_in "$c/ferry-svc/erp")" -ge 120 ] && break
  sleep 0.2
done
wine net stop Ferry > "$work/net-stop.log" 2>&1 || { cat "$work/net-stop.log"; fail "net stop Ferry"; }
for _ in $(seq 1 50); do grep -q "stopped cleanly" "$pd/log/ferry.log" && break; sleep 0.2; done
grep -q "stopped cleanly" "$pd/log/ferry.log" || { cat "$pd/log/ferry.log"; fail "the service did not stop cleanly"; }
n=$(orders_in "$c/ferry-svc/erp")
[ "$n" -eq 120 ] || fail "the service delivered $n of 120 orders"
cp "$work/shipped.ini" "$pd/ferry.ini"

step "uninstall"
rm -f "$pf/plugins/sink_json_lines.dll"  # not the MSI's: the operator's own plugin
wine msiexec /x "$msi" /qn > "$work/uninstall.log" 2>&1 || { cat "$work/uninstall.log"; fail "msiexec /x"; }
[ ! -e "$pf/ferry.exe" ] || fail "ferry.exe is still there after the uninstall"
[ -z "$(ls "$pf/plugins" 2>/dev/null)" ] || fail "plugins left after the uninstall: $(ls "$pf/plugins")"
[ -f "$pd/ferry.ini" ] || fail "the uninstall removed the operator's config"
[ -f "$pd/state/journal.db" ] || fail "the uninstall removed the journal"
if wine net start Ferry > "$work/net-after.log" 2>&1; then fail "the service still starts after the uninstall"; fi
echo "windows_test: all checks passed ($((SECONDS - t0)) s)"
