#!/usr/bin/env bash
# End-to-end backfill benchmark: ORDERS (default 100,000) DuckHub orders from the simulator,
# serving pre-rendered pages (--cache) so that it is not the bottleneck, through ferry into ERP
# CSV files, durably. Prints orders/s, CPU seconds and peak RSS, next to the raw rate of fetching
# the same pages without processing them, measured in the same run.
#
#   bench/run_duckhub_csv.sh            (ORDERS=20000 bench/run_duckhub_csv.sh for a quick one)
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-100000}
START=2026-07-05T12:00:00.000Z
scripts/build >/dev/null
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }
bin=build/bin
work=$(mktemp -d /tmp/ferry-bench.XXXXXX)
trap 'kill $sim 2>/dev/null || true; rm -rf "$work"' EXIT

$bin/duckhub-sim --venues 1 --orders "$ORDERS" --cache --no-rate-limit --quiet \
  --start "$START" --port-file "$work/port" --keys-file "$work/keys.json" >/dev/null &
sim=$!
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(head -n1 "$work/port")
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["venues"][0]["api_key"])' "$work/keys.json")
base="http://127.0.0.1:$port/v1"
from=2000-01-01T00:00:00.000Z

echo "== $ORDERS orders, simulator on $base (pre-rendered pages)"
# The first pass renders and caches every page; the measured passes below read warm pages.
$bin/fetch_pages "$base" "$key" "$from" >/dev/null
$bin/fetch_pages "$base" "$key" "$from"

mkdir -p "$work/csv"
cat > "$work/bench.ini" <<INI
[host]
journal = $work/journal.db
plugin_dir = $PWD/build/lib/ferry/plugins
log_level = warning

[source.venue]
plugin = source_duckhub_orders
base_url = $base
api_key = $key
rate_limit = false
start_from = $from
lookback = 0s
page_size = 100

[sink.erp]
plugin = sink_erp_csv
dir = $work/csv
layout = duckhub_order
max_rows = 100000
batch_size = 5000
INI
/usr/bin/time -f "%e %U %S %M" -o "$work/time" $bin/ferry run --once --config "$work/bench.ini"
read -r elapsed user sys rss_kb < "$work/time"
rows=$(cat "$work/csv"/*.csv | grep -c . || true)
files=$(ls "$work/csv" | wc -l)
python3 - "$ORDERS" "$elapsed" "$user" "$sys" "$rss_kb" "$rows" "$files" <<'PY'
import sys
orders, elapsed, user, sys_, rss, rows, files = sys.argv[1:]
orders, elapsed, cpu = int(orders), float(elapsed), float(user) + float(sys_)
print(f"ferry end to end: {orders} orders in {elapsed:.2f} s = {orders/elapsed:,.0f} orders/s, "
      f"CPU {cpu:.2f} s, peak RSS {int(rss)/1024:.1f} MiB, {files} CSV files, {rows} lines "
      f"(header included) — journal fsynced, CSV fsynced")
PY
