#!/usr/bin/env bash
# Several hosts on one PostgreSQL journal, run on demand (never by scripts/test or ctest):
#
#   bench/run_hosts.sh [ORDERS]        e.g. bench/run_hosts.sh 20000
#
# Three DuckHub simulators (three API hosts: three request budgets, so three lease groups of one
# source each) serve ORDERS orders each (default 10000; pre-rendered pages, no rate limit), and
# three CSV sinks take every source's events: 6 lease groups. On one throwaway PostgreSQL server
# (tests/plugins/sql/servers.sh, started with fsync on), with a fresh journal each time:
#
#   1, 2 and 3 hosts  `ferry run` processes with the same config and their own host_id, started
#                     together on a fresh journal: the seconds until every order is journalled and
#                     until every sink has delivered it, as events/s (journalled: 3 × ORDERS
#                     events; delivered: 3 × 3 × ORDERS event deliveries). Each sink's CSV folder
#                     is checked: 3 × ORDERS rows of 3 × ORDERS distinct orders.
#   takeover          two hosts, orders changing at every simulator (LIVE changes/s each, default
#                     20), lease_time LEASE_TIME (default 5s): the host running sink erp1 is killed
#                     with SIGKILL, and the time from the kill to the first CSV file the new owner
#                     writes is printed (TAKEOVERS times, default 3: min, median, max).
#
# All hosts run on this machine (its cores are shared by the hosts, the simulators and
# PostgreSQL): more hosts spread the work, they do not add cores. Every process it starts is
# stopped by its PID (the database server by servers.sh stop), also when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-${ORDERS:-10000}}
if ! [[ "$orders" =~ ^[1-9][0-9]*$ ]]; then
  echo "ORDERS must be a positive integer, not '$orders'" >&2
  exit 64
fi
lease_time=${LEASE_TIME:-5s}
live=${LIVE:-20}
takeovers=${TAKEOVERS:-3}
build=${FERRY_BUILD_DIR:-build}
[ -f "$build/build.ninja" ] ||
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j2 --target ferry source_duckhub_orders sink_erp_csv duckhub-sim \
  > /dev/null
bin=$build/bin
plugins=$(cd "$build" && pwd)/lib/ferry/plugins

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-hosts.XXXXXX")
chmod 755 "$work"
sims=()
hosts=()
db=""
cleanup() {
  {
    for p in "${hosts[@]}" "${sims[@]}"; do
      kill -0 "$p" && { kill -9 "$p"; wait "$p" || true; }
    done
  } 2> /dev/null
  [ -n "$db" ] && tests/plugins/sql/servers.sh stop "$db" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
note() { echo "-- $*" >&2; }
fail() {
  echo "FAILED: $*" >&2
  for f in "$work"/h*.err; do [ -f "$f" ] && tail -n 5 "$f" | cut -c1-300 >&2; done
  exit 1
}
now() { date +%s.%N; }

# --- simulators and PostgreSQL -------------------------------------------------------------------
from=2000-01-01T00:00:00.000Z
for i in 1 2 3; do
  "$bin/duckhub-sim" --seed "$i" --venues 1 --orders "$orders" --cache --no-rate-limit --quiet \
    --start 2026-07-05T12:00:00.000Z --port-file "$work/port$i" --keys-file "$work/keys$i.json" \
    > /dev/null &
  sims+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1 600); do [ -s "$work/port$i" ] && break; sleep 0.1; done
  [ -s "$work/port$i" ] || fail "simulator $i did not start"
done
sim_url() { echo "http://127.0.0.1:$(head -n1 "$work/port$1")"; }
sim_key() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["venues"][0]["api_key"])' \
    "$work/keys$1.json"
}
db=$work/db
mkdir -p "$db"
FERRY_TEST_PG_FSYNC=on tests/plugins/sql/servers.sh start "$db" > /dev/null
. "$db/env"
pg_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<< "$FERRY_TEST_PG")
[ "$(psql "$FERRY_TEST_PG" -Atc 'SHOW fsync')" = on ] || fail "PostgreSQL runs with fsync off"
jdb=""
journal_sql() { psql "${FERRY_TEST_PG/dbname=postgres/dbname=$jdb}" -Atc "$1"; }
low_offset() {  # the lowest sink offset
  journal_sql "SELECT coalesce(min(sequence), 0) FROM sink_offsets" 2> /dev/null || echo 0
}
sink_count() { journal_sql "SELECT count(*) FROM sink_offsets" 2> /dev/null || echo 0; }

# fresh NAME: a fresh journal database and CSV folders; writes h1.ini … h3.ini.
fresh() {
  jdb=$1
  PGOPTIONS='-c client_min_messages=warning' psql "$FERRY_TEST_PG" -q \
    -c "DROP DATABASE IF EXISTS $jdb" -c "CREATE DATABASE $jdb" > /dev/null
  rm -rf "$work/csv" "$work"/h*.err
  for s in 1 2 3; do mkdir -p "$work/csv/erp$s"; done
  for h in 1 2 3; do
    {
      printf '[host]\njournal = postgresql://postgres@127.0.0.1:%s/%s\n' "$pg_port" "$jdb"
      printf 'host_id = bench-h%s\nplugin_dir = %s\nlog_level = info\n' "$h" "$plugins"
      printf 'lease_time = %s\nretry_initial = 100ms\nretry_max = 1s\n' "$lease_time"
      for s in 1 2 3; do
        printf '\n[source.api%s]\nplugin = source_duckhub_orders\nbase_url = %s/v1\n' "$s" \
          "$(sim_url "$s")"
        printf 'api_key = %s\nrate_limit = false\nstart_from = %s\nlookback = 0s\n' \
          "$(sim_key "$s")" "$from"
        printf 'page_size = 100\ninterval = 500ms\n'
      done
      for s in 1 2 3; do
        printf '\n[sink.erp%s]\nplugin = sink_erp_csv\ndir = %s\nlayout = duckhub_order\n' \
          "$s" "$work/csv/erp$s"
        printf 'max_rows = 100000\nbatch_size = 5000\nbatch_delay = 200ms\n'
      done
    } > "$work/h$h.ini"
  done
}
start_host() {  # N: starts host N, its PID in host_pid[N]
  "$bin/ferry" run --config "$work/h$1.ini" > /dev/null 2>> "$work/h$1.err" &
  host_pid[$1]=$!
  hosts+=($!)
}
stop_hosts() {
  for h in "${!host_pid[@]}"; do kill -TERM "${host_pid[$h]}" 2> /dev/null || true; done
  for h in "${!host_pid[@]}"; do wait "${host_pid[$h]}" 2> /dev/null || true; done
  host_pid=()
}
declare -A host_pid=()
csv_count() {  # DIR: "rows distinct"
  python3 - "$1" << 'PY'
import csv, glob, sys
rows, ids = 0, set()
for path in glob.glob(sys.argv[1] + "/*.csv"):
    with open(path, newline="", encoding="utf-8-sig") as f:
        r = csv.reader(f)
        next(r, None)
        for rec in r:
            rows += 1
            ids.add(rec[0])
print(rows, len(ids))
PY
}

# --- throughput with 1, 2 and 3 hosts -------------------------------------------------------------
total=$((3 * orders))
results=()
for n in 1 2 3; do
  fresh "bench_hosts_$n"
  t0=$(now)
  for h in $(seq 1 "$n"); do start_host "$h"; done
  t_journal=""
  t_delivered=""
  deadline=$(($(date +%s) + orders / 20 + 300))
  while [ -z "$t_delivered" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$n host(s): not delivered in time"
    sleep 0.1
    events=$(journal_sql "SELECT count(*) FROM events" 2> /dev/null || echo 0)
    [ -z "$t_journal" ] && [ "$events" -ge "$total" ] && t_journal=$(now)
    [ -n "$t_journal" ] || continue
    [ "$(sink_count)" = 3 ] && [ "$(low_offset)" -ge "$total" ] && t_delivered=$(now)
  done
  spread=$(journal_sql "SELECT count(DISTINCT owner) FROM leases WHERE owner IS NOT NULL")
  stop_hosts
  for s in 1 2 3; do
    read -r rows distinct < <(csv_count "$work/csv/erp$s")
    [ "$rows" = "$total" ] && [ "$distinct" = "$total" ] ||
      fail "$n host(s): erp$s holds $rows rows of $distinct orders, expected $total"
  done
  results+=("$(awk -v n="$n" -v s="$spread" -v t="$total" -v a="$t0" -v j="$t_journal" \
    -v d="$t_delivered" 'BEGIN { printf "%d host(s) (%d running work)\t%.2f\t%.0f\t%.2f\t%.0f",
      n, s, j - a, t / (j - a), d - a, 3 * t / (d - a) }')")
  note "${results[-1]}"
done

# --- takeover after kill -9 -----------------------------------------------------------------------
fresh bench_hosts_takeover
start_host 1
start_host 2
deadline=$(($(date +%s) + orders / 20 + 300))
until [ "$(low_offset)" -ge "$total" ] && [ "$(sink_count)" = 3 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "takeover: the backfill did not finish"
  sleep 0.2
done
for s in 1 2 3; do
  curl -sf -X POST "$(sim_url "$s")/_sim/live" -d "{\"rate\":$live}" > /dev/null
done
takeover_times=()
for round in $(seq 1 "$takeovers"); do
  sleep 2
  owner=$(journal_sql "SELECT owner FROM leases WHERE lease_group = 'sink erp1'")
  victim=${owner#bench-h}
  [[ "$victim" =~ ^[12]$ ]] || fail "takeover: sink erp1 is run by '$owner'"
  killed_at=$(now)
  kill -9 "${host_pid[$victim]}"
  wait "${host_pid[$victim]}" 2> /dev/null || true
  # The first CSV file of erp1 written after the kill: the new owner's (the killed host is gone).
  first=$(python3 - "$work/csv/erp1" "$killed_at" "$(($(date +%s) + 120))" << 'PY'
import glob, os, sys, time
folder, killed, deadline = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
while time.time() < deadline:
    times = [os.stat(p).st_mtime for p in glob.glob(folder + "/*.csv")]
    later = [t for t in times if t > killed]
    if later:
        print(f"{min(later):.3f}")
        sys.exit(0)
    time.sleep(0.02)
sys.exit(1)
PY
) || fail "takeover: no file written after the kill"
  takeover_times+=("$(awk -v a="$killed_at" -v b="$first" 'BEGIN { printf "%.2f", b - a }')")
  note "takeover $round: host bench-h$victim killed," \
    "erp1 delivered again after ${takeover_times[-1]} s"
  start_host "$victim"
done
stop_hosts

# --- the table ------------------------------------------------------------------------------------
printf '\n%-32s %12s %14s %12s %14s\n' "" "journalled s" "journalled/s" "delivered s" "deliveries/s"
for r in "${results[@]}"; do
  IFS=$'\t' read -r label js jr ds dr <<< "$r"
  printf '%-32s %12s %14s %12s %14s\n' "$label" "$js" "$jr" "$ds" "$dr"
done
sorted=$(printf '%s\n' "${takeover_times[@]}" | sort -n | tr '\n' ' ')
read -r -a t <<< "$sorted"
printf '\ntakeover after kill -9 (lease_time %s, %s changes/s per simulator): ' \
  "$lease_time" "$live"
printf 'min %s s, median %s s, max %s s\n' "${t[0]}" "${t[$(( ${#t[@]} / 2 ))]}" "${t[-1]}"
printf '%s orders per simulator, 3 simulators, 3 CSV sinks; %s cores, PostgreSQL with fsync on.\n' \
  "$orders" "$(nproc)"
