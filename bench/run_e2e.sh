#!/usr/bin/env bash
# End-to-end backfill benchmark, run on demand (never by scripts/test or ctest):
#
#   bench/run_e2e.sh [ORDERS] [MODES]        e.g. bench/run_e2e.sh 100000 csv,sqlite
#
# ORDERS (default $ORDERS, else 100000) DuckHub orders of one venue come from the simulator
# serving pre-rendered pages (--cache, no rate limit), so that it is not the bottleneck. In the
# same run it measures, one after the other on the same simulator:
#   raw    bench/fetch_pages: every page by keyset over one keep-alive connection, no processing
#          (the same query strings ferry sends); unmeasured passes first render the pages
#   guide  bench/guide/duckhub_loop.js: the DuckHub guide's polling loop (Node, page=1,2,… over a
#          fixed cursor, one fs.appendFileSync per order, not durable); one unmeasured pass first
# and, per MODE (comma-separated; default csv):
#   csv         ferry run --once, source_duckhub_orders → sink_erp_csv (layout duckhub_order)
#   sqlite      … → sink_sql, connector sqlite, mapped table `orders` (one row per order)
#   postgresql  … → sink_sql, connector postgresql, the same table, on a throwaway server
#               (tests/plugins/sql/servers.sh, started with fsync on)
#   backlog     ferry with the source alone fills a journal with ORDERS events; then ferry with
#               the source and one sink drains it (the source only re-polls its last page), into
#               CSV, SQLite and PostgreSQL in turn
#   all         every mode above
# JOURNAL=postgresql (default sqlite) keeps ferry's journal in PostgreSQL (a fresh database of the
# throwaway server per run) instead of a SQLite file: compare the two with the same MODES, e.g.
#   bench/run_e2e.sh 100000 csv,backlog; JOURNAL=postgresql bench/run_e2e.sh 100000 csv,backlog
# Every ferry run is durable: the journal is SQLite with synchronous=FULL, CSV files are fsynced
# with their folder, SQLite sinks run with synchronous=FULL, PostgreSQL with fsync and
# synchronous_commit on. The CSV and SQLite sinks use batch_size = $BATCH (default 5000); the
# PostgreSQL sink $PG_BATCH (default 394): with more than 394 rows of the 19-column orders table in
# one statement (7,500 parameters), libpq rejects the server's ParameterDescription message ("lost
# synchronization with server: got message type "t"") and the sink retries forever.
#
# Prints a table: wall seconds, orders/s, ferry's rate over the guide's and over the raw rate, CPU
# seconds (user + system) and peak RSS of each measured process (GNU time), and the CPU seconds
# the simulator spent during it. Peak RSS counts file-backed pages too (ferry's journal is not
# memory-mapped, and its page cache is bounded, so its RSS stays flat as the journal grows). Each
# row is checked: the CSV rows, table rows or journal events must be ORDERS distinct orders, else
# the script fails without printing a figure for it.
# Every process it starts is stopped by its PID (database servers by servers.sh stop), also when
# it fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-${ORDERS:-100000}}
modes=${2:-csv}
if ! [[ "$orders" =~ ^[1-9][0-9]*$ ]]; then
  echo "ORDERS must be a positive integer, not '$orders'" >&2
  exit 64
fi
[ "$modes" = all ] && modes=csv,sqlite,postgresql,backlog
IFS=, read -r -a mode_list <<< "$modes"
want_pg=false
journal_kind=${JOURNAL:-sqlite}
case "$journal_kind" in
  sqlite) ;;
  postgresql) want_pg=true ;;
  *) echo "JOURNAL must be sqlite or postgresql, not '$journal_kind'" >&2; exit 64 ;;
esac
for m in "${mode_list[@]}"; do
  case "$m" in
    csv | sqlite) ;;
    postgresql | backlog) want_pg=true ;;
    *) echo "unknown mode '$m' (csv, sqlite, postgresql, backlog or all)" >&2; exit 64 ;;
  esac
done
if ! command -v node > /dev/null; then
  echo "node (Node.js 20) is needed for the guide's loop" >&2
  exit 69
fi
command -v /usr/bin/time > /dev/null || apt-get install -y -q time > /dev/null

batch=${BATCH:-5000}
pg_batch=${PG_BATCH:-394}
build=${FERRY_BUILD_DIR:-build}
[ -f "$build/build.ninja" ] ||
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j2 --target ferry source_duckhub_orders sink_erp_csv sink_sql duckhub-sim \
  fetch_pages > /dev/null
bin=$build/bin
plugins=$(cd "$build" && pwd)/lib/ferry/plugins

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-e2e.XXXXXX")
chmod 755 "$work"
sim=""
job=""
db=""
cleanup() {
  # The measured job runs in its own process group (setsid): stop the group, i.e. time and child.
  [ -n "$job" ] && kill -- "-$job" 2> /dev/null || true
  [ -n "$sim" ] && kill "$sim" 2> /dev/null && wait "$sim" 2> /dev/null || true
  [ -n "$db" ] && tests/plugins/sql/servers.sh stop "$db" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "-- $*" >&2; }
fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# --- the simulator ------------------------------------------------------------------------------
start=2026-07-05T12:00:00.000Z
from=2000-01-01T00:00:00.000Z
"$bin/duckhub-sim" --venues 1 --orders "$orders" --cache --no-rate-limit --quiet \
  --start "$start" --port-file "$work/port" --keys-file "$work/keys.json" > /dev/null &
sim=$!
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || fail "the simulator did not start"
port=$(head -n1 "$work/port")
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["venues"][0]["api_key"])' \
  "$work/keys.json")
base="http://127.0.0.1:$port/v1"
tick=$(getconf CLK_TCK)
sim_cpu() { awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$sim/stat"; }

# --- measuring ----------------------------------------------------------------------------------
# measure NAME COMMAND…: runs it under GNU time in its own process group, output in $work/NAME.*;
# sets elapsed, cpu (user + system s), rss_mib and sim_s (the simulator's CPU s meanwhile). A run
# that takes longer than BENCH_TIMEOUT seconds (default ORDERS/100 + 300) is stopped and fails
# the bench (e.g. a sink that retries forever: ferry run --once waits for it).
limit=${BENCH_TIMEOUT:-$((orders / 100 + 300))}
measure() {
  local name=$1
  shift
  local sim_before
  sim_before=$(sim_cpu)
  setsid timeout -k 10 "$limit" /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" \
    > "$work/$name.out" 2> "$work/$name.err" &
  job=$!
  local rc=0
  wait "$job" || rc=$?
  job=""
  if [ "$rc" -ne 0 ]; then
    tail -n 5 "$work/$name.out" "$work/$name.err" | cut -c1-400 >&2
    [ "$rc" -eq 124 ] && fail "$name did not finish within $limit s (BENCH_TIMEOUT)"
    fail "$name exited with $rc"
  fi
  local user sys rss_kb
  read -r elapsed user sys rss_kb < <(tail -n1 "$work/$name.time")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  rss_mib=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }')
  sim_s=$(awk -v a="$sim_before" -v b="$(sim_cpu)" 'BEGIN { printf "%.2f", b - a }')
}

# row LABEL KIND: one line of the table (KIND raw, guide or ferry), from measure's figures.
rows_file=$work/rows.tsv
row() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$orders" "$elapsed" "$cpu" "$rss_mib" \
    "$sim_s" >> "$rows_file"
  note "$1: $elapsed s"
}

# check WHAT COUNT DISTINCT: a broken run must not print a good figure.
check() {
  [ "$2" = "$orders" ] && [ "$3" = "$orders" ] ||
    fail "$1 holds $2 rows ($3 distinct orders), expected $orders"
}
csv_rows() {  # header|none FILE…: "rows distinct orders" (header: skip each file's first row)
  python3 - "$@" << 'PY'
import csv, sys
rows, ids = 0, set()
for path in sys.argv[2:]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        r = csv.reader(f)
        if sys.argv[1] == "header":
            next(r, None)
        for rec in r:
            rows += 1
            ids.add(rec[0])
print(rows, len(ids))
PY
}

# --- the guide's loop and raw fetch -------------------------------------------------------------
# Each first runs once unmeasured, so that the simulator has rendered and cached its pages. The
# guide's page=N pages come first: the cache (512 MB) is emptied whenever it overflows, and the
# keyset pages that raw fetch and every ferry run read must stay in it (two warm-up passes: after
# one overflow the second refills it). Above about 500,000 orders they no longer fit: the
# simulator renders pages during the measured runs too ("sim CPU s" shows it).
note "$orders orders, journal $journal_kind, simulator on $base (pre-rendered pages);" \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
guide() {  # DIR NAME: one pass of the guide's loop, cursor and CSV in DIR
  mkdir -p "$1"
  measure "$2" env START_FROM="$from" node bench/guide/duckhub_loop.js "$base" "$key" \
    "$1/cursor" "$1/orders.csv" --once
}
guide "$work/guide-warm" guide-warm
rm -rf "$work/guide-warm"
guide "$work/guide" guide
read -r n distinct < <(csv_rows none "$work/guide/orders.csv")
check "the guide's CSV" "$n" "$distinct"
row "guide loop (Node 20, appendFileSync, not durable)" guide
rm -rf "$work/guide"

"$bin/fetch_pages" "$base" "$key" "$from" > /dev/null
"$bin/fetch_pages" "$base" "$key" "$from" > /dev/null
measure raw "$bin/fetch_pages" "$base" "$key" "$from"
grep -q "^raw fetch: $orders orders" "$work/raw.out" || fail "raw fetch: $(cat "$work/raw.out")"
row "raw fetch (bench/fetch_pages)" raw

# --- ferry --------------------------------------------------------------------------------------
if $want_pg; then
  db=$work/db
  mkdir -p "$db"
  # servers.sh runs PostgreSQL with fsync=off (fast tests); a durable figure needs it on.
  FERRY_TEST_PG_FSYNC=on tests/plugins/sql/servers.sh start "$db" > /dev/null
  . "$db/env"
  pg_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<< "$FERRY_TEST_PG")
  [ "$(psql "$FERRY_TEST_PG" -Atc 'SHOW fsync')" = on ] || fail "PostgreSQL runs with fsync off"
fi
pg_database() {  # NAME: a fresh database, prints its conninfo
  PGOPTIONS='-c client_min_messages=warning' psql "$FERRY_TEST_PG" -q \
    -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" > /dev/null
  echo "${FERRY_TEST_PG/dbname=postgres/dbname=$1}"
}

# journal_for DIR NAME: a fresh journal, its [host] journal value (JOURNAL=postgresql: a database
# NAME). journal_sql DIR NAME SQL: one value from it.
journal_for() {
  if [ "$journal_kind" = postgresql ]; then
    pg_database "$2" > /dev/null
    echo "postgresql://postgres@127.0.0.1:$pg_port/$2"
  else
    echo "$1/journal.db"
  fi
}
journal_sql() {
  if [ "$journal_kind" = postgresql ]; then
    psql "${FERRY_TEST_PG/dbname=postgres/dbname=$2}" -Atc "$3"
  else
    sqlite3 "$1/journal.db" "$3"
  fi
}

# ferry_config DIR JOURNAL [SINK_KIND SINK_NAME TARGET]: the source, and a sink unless omitted.
ferry_config() {
  cat > "$1/ferry.ini" << INI
[host]
journal = $2
plugin_dir = $plugins
log_level = warning

[source.venue]
plugin = source_duckhub_orders
base_url = $base
api_key = $key
rate_limit = false
start_from = $from
lookback = 0s
page_size = 100
INI
  case "${3:-}" in
    csv)
      printf '\n[sink.%s]\nplugin = sink_erp_csv\ndir = %s\nlayout = duckhub_order\n' "$4" "$5"
      printf 'max_rows = 100000\nbatch_size = %s\n' "$batch"
      ;;
    sqlite | postgresql)
      printf '\n[sink.%s]\nplugin = sink_sql\nconnector = %s\nconnection = %s\n' "$4" "$3" "$5"
      printf 'changes = false\ntable = orders\nbatch_size = %s\n' \
        "$([ "$3" = postgresql ] && echo "$pg_batch" || echo "$batch")"
      ;;
  esac >> "$1/ferry.ini"
}

# target KIND DIR NAME: where a sink of KIND writes (created empty); check_target KIND DIR WHAT.
target() {
  case "$1" in
    csv) mkdir -p "$2/csv" && echo "$2/csv" ;;
    sqlite) echo "$2/erp.db" ;;
    postgresql) pg_database "$3" ;;
  esac
}
check_target() {
  local n distinct
  case "$1" in
    csv)
      read -r n distinct < <(csv_rows header "$2"/csv/*.csv)
      check "$3's CSV files" "$n" "$distinct"
      ;;
    sqlite)
      read -r n distinct < <(sqlite3 -separator ' ' "$2/erp.db" \
        'SELECT count(*), count(DISTINCT order_id) FROM orders')
      check "$3's SQLite table" "$n" "$distinct"
      ;;
    postgresql)
      read -r n distinct < <(psql "$4" -At -F ' ' \
        -c 'SELECT count(*), count(DISTINCT order_id) FROM orders')
      check "$3's PostgreSQL table" "$n" "$distinct"
      ;;
  esac
}
label() {
  case "$1" in
    csv) echo "CSV (sink_erp_csv)" ;;
    sqlite) echo "SQLite (sink_sql)" ;;
    postgresql) echo "PostgreSQL (sink_sql)" ;;
  esac
}

e2e() {  # KIND: source → sink end to end, fresh journal
  local d=$work/e2e-$1 t
  mkdir -p "$d"
  t=$(target "$1" "$d" "bench_e2e")
  ferry_config "$d" "$(journal_for "$d" "bench_journal_e2e_$1")" "$1" erp "$t"
  measure "e2e-$1" "$bin/ferry" run --once --config "$d/ferry.ini"
  check_target "$1" "$d" "ferry → $1" "$t"
  row "ferry → $(label "$1"), durable, $journal_kind journal" ferry
  rm -rf "$d"
}

backlog() {  # the journal filled by the source alone, then drained by each sink in turn
  local d=$work/backlog kind t n journal
  mkdir -p "$d"
  journal=$(journal_for "$d" bench_journal_backlog)
  ferry_config "$d" "$journal"
  measure backlog-fill "$bin/ferry" run --once --config "$d/ferry.ini"
  n=$(journal_sql "$d" bench_journal_backlog 'SELECT count(*) FROM events')
  check "the journal" "$n" \
    "$(journal_sql "$d" bench_journal_backlog 'SELECT count(DISTINCT key) FROM events')"
  row "ferry source only → $journal_kind journal (backlog fill)" ferry
  for kind in csv sqlite postgresql; do
    mkdir -p "$d/$kind"
    t=$(target "$kind" "$d/$kind" "bench_backlog")
    ferry_config "$d" "$journal" "$kind" "drain_$kind" "$t"
    measure "backlog-$kind" "$bin/ferry" run --once --config "$d/ferry.ini"
    check_target "$kind" "$d/$kind" "the backlog drain → $kind" "$t"
    row "backlog of $orders events drained from the $journal_kind journal → $(label "$kind")" ferry
  done
  [ "$(journal_sql "$d" bench_journal_backlog 'SELECT count(*) FROM events')" = "$orders" ] ||
    fail "the drains journalled new events"
  rm -rf "$d"
}

for m in "${mode_list[@]}"; do
  case "$m" in
    backlog) backlog ;;
    *) e2e "$m" ;;
  esac
done

# --- the table ----------------------------------------------------------------------------------
python3 - "$rows_file" "$batch" "$pg_batch" << 'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1], encoding="utf-8")]
rows.sort(key=lambda r: {"raw": 0, "guide": 1}.get(r[1], 2))  # stable: ferry rows in run order
rate = {}
for label, kind, orders, elapsed, *_ in rows:
    rate.setdefault(kind, int(orders) / float(elapsed))
head = ("", "wall s", "orders/s", "×guide", "×raw", "CPU s", "peak RSS MiB", "sim CPU s")
out = []
for label, kind, orders, elapsed, cpu, rss, sim in rows:
    r = int(orders) / float(elapsed)
    ratios = (f"{r / rate['guide']:.2f}", f"{r / rate['raw']:.2f}") if kind == "ferry" else ("", "")
    out.append((label, f"{float(elapsed):.2f}", f"{r:,.0f}", *ratios, cpu, rss, sim))
widths = [max(len(x[i]) for x in [head] + out) for i in range(len(head))]
for line in [head] + out:
    cells = zip(line, widths)
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
print(f"\n{rows[0][2]} orders per row, each checked (rows, distinct orders); wall s per process, "
      f"CPU s (user + system) and peak RSS (file-backed pages included) "
      f"from GNU time; sim CPU s: the simulator meanwhile; "
      f"batch_size {sys.argv[2]} (PostgreSQL {sys.argv[3]}).")
PY
