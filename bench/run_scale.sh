#!/usr/bin/env bash
# Thousands of sources on one host, run on demand (never by scripts/test or ctest):
#
#   bench/run_scale.sh [--minutes M] [--accounts N] [--venues V] [--workers W]
#
# Defaults: 10 minutes, 10,000 Tradecloud accounts (orders + shipments: 20,000 sources) at a
# 5-minute interval, 1,000 DuckHub venues at 20 s with the rate limit off, [host] workers 8. The
# simulators (tradecloud-sim --accounts N: each account polls its own share of 2N orders and N
# shipments; duckhub-sim, 2 orders per venue) change data live (1 change/s each) and the watcher
# makes one change in venue v1 every 2 s. Ferry runs with every source in conf.d files ([host]
# include), a test_sink that records every event (key and version) and a sink_erp_csv fed by v1
# alone.
#
# Prints: the lateness of the sources' turns against their schedule (p50, p99, max: the host's
# own summary, logged each minute and at the stop; the turns of the stop itself, every source
# woken at once for its last turn, are counted apart and printed on their own line), CPU share
# (ferry's user + system seconds over the wall time), peak RSS, the most threads and open files seen (sampled each second), the
# change-to-file latency of v1 (when its CSV row appeared minus the change's updatedAt; p50, p99,
# max), and whether every change was delivered: after the timed run a `ferry run --once` pass
# picks up what changed since each source's last poll (the Tradecloud sources poll every 5
# minutes), then every order and shipment of both simulators must be in the sink at its current
# version. Every process it starts is stopped by its PID, also when it fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 accounts=10000 venues=1000 workers=8
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --accounts) accounts=$2; shift 2 ;;
    --venues) venues=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *) echo "usage: bench/run_scale.sh [--minutes M] [--accounts N] [--venues V] [--workers W]" >&2
       exit 64 ;;
  esac
done
for v in "$minutes" "$accounts" "$venues" "$workers"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "not a number: '$v'" >&2; exit 64; }
done

build=${FERRY_BUILD_DIR:-build}
[ -f "$build/build.ninja" ] ||
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
nice cmake --build "$build" -j2 --target ferry source_duckhub_orders source_tradecloud_orders \
  source_tradecloud_shipments sink_erp_csv test_sink duckhub-sim tradecloud-sim > /dev/null
bin=$(cd "$build" && pwd)/bin
lib=$(cd "$build" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-scale.XXXXXX")
dh="" tc="" ferry="" watcher=""
cleanup() {
  for p in "$watcher" "$ferry" "$dh" "$tc"; do
    [ -n "$p" ] && kill "$p" 2> /dev/null && wait "$p" 2> /dev/null || true
  done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/plugins" "$work/conf.d" "$work/erp"
for p in source_duckhub_orders source_tradecloud_orders source_tradecloud_shipments sink_erp_csv; do
  ln -s "$lib/lib/ferry/plugins/$p.so" "$work/plugins/$p.so"
done
ln -s "$lib/test-plugins/test_sink.so" "$work/plugins/test_sink.so"

wait_for() {  # FILE: waits until it holds a line
  for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; exit 1
}
password=bench-password-1
"$bin/duckhub-sim" --venues "$venues" --orders 2 --no-rate-limit --live-rate 1 --quiet \
  --port-file "$work/dh.port" --keys-file "$work/dh.keys" > /dev/null 2> "$work/dh.log" &
dh=$!
"$bin/tradecloud-sim" --accounts "$accounts" --orders $((2 * accounts)) --shipments "$accounts" \
  --password "$password" --live-rate 1 --quiet --port-file "$work/tc.port" \
  > /dev/null 2> "$work/tc.log" &
tc=$!
wait_for "$work/dh.port"
wait_for "$work/tc.port"
dh_port=$(cat "$work/dh.port")
tc_port=$(cat "$work/tc.port")

python3 - "$work" "$dh_port" "$tc_port" "$accounts" "$password" "$workers" << 'EOF'
import json, sys
work, dh_port, tc_port, accounts, password, workers = sys.argv[1:]
keys = json.load(open(work + '/dh.keys'))['venues']
with open(work + '/conf.d/duckhub.ini', 'w') as f:
    for v in keys:
        f.write('[source.dh-%s]\nplugin = source_duckhub_orders\nbase_url = http://127.0.0.1:%s/v1\n'
                'api_key = %s\ninterval = 20s\nrate_limit = false\nstart_from = 2026-07-05T00:00:00Z\n\n'
                % (v['venue'], dh_port, v['api_key']))
with open(work + '/conf.d/tradecloud.ini', 'w') as f:
    for n in range(1, int(accounts) + 1):
        for kind in ('orders', 'shipments'):
            f.write('[source.tc%d-%s]\nplugin = source_tradecloud_%s\nbase_url = http://127.0.0.1:%s/v2\n'
                    'email = integration+%d@example.test\npassword = %s\ninterval = 5m\n'
                    'start_from = 2025-04-23T00:00:00Z\n\n' % (n, kind, kind, tc_port, n, password))
with open(work + '/ferry.ini', 'w') as f:
    f.write('[host]\njournal = %s/journal.db\nplugin_dir = %s/plugins\nlog_file = %s/ferry.log\n'
            'workers = %s\ninclude = %s/conf.d\n\n' % (work, work, work, workers, work))
    f.write('[sink.all]\nplugin = test_sink\nout = %s/all.jsonl\nbatch_size = 500\n'
            'batch_delay = 200ms\n\n' % work)
    f.write('[sink.erp]\nplugin = sink_erp_csv\nfrom = dh-v1\ndir = %s/erp\nlayout = duckhub_order\n'
            'batch_delay = 100ms\n' % work)
EOF

echo "ferry check:"
"$bin/ferry" check --config "$work/ferry.ini" | grep -v '^  \[' || true
start=$(date +%s.%N)
"$bin/ferry" run --config "$work/ferry.ini" 2> "$work/ferry.err" &
ferry=$!
python3 bench/scale_watch.py watch "$ferry" "$work/erp" "$dh_port" v1 "$work/stop" \
  "$work/watch.json" &
watcher=$!
sleep "$(python3 -c "print($minutes * 60)")"
touch "$work/stop"
wait "$watcher"
watcher=""
kill -TERM "$ferry"
wait "$ferry" || { echo "ferry run failed:"; tail -20 "$work/ferry.err" "$work/ferry.log"; exit 1; }
ferry=""
end=$(date +%s.%N)
curl -sf -X POST -d '{"rate":0}' "http://127.0.0.1:$dh_port/_sim/live" > /dev/null
curl -sf -X POST -d '{"live_rate":0}' "http://127.0.0.1:$tc_port/_sim/config" > /dev/null

python3 - "$work" "$start" "$end" "$minutes" "$accounts" "$venues" "$workers" << 'EOF'
import json, re, sys
work, start, end, minutes, accounts, venues, workers = sys.argv[1:]
w = json.load(open(work + '/watch.json'))
s = w['samples']
wall = s[-1]['t'] - s[0]['t']
cpu = s[-1]['cpu'] - s[0]['cpu']
lines = [l for l in open(work + '/ferry.log') if 'scheduling:' in l]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))] if v else float('nan')
lat = w['latencies']
print('\n%s minutes, %s Tradecloud accounts (%d sources) at 5 min, %s DuckHub venues at 20 s, '
      '%s workers' % (minutes, accounts, 2 * int(accounts), venues, workers))
# The summary at the stop: the steady state since the start, then the turns of the stop itself
# (every source woken at once for its last turn; counted apart by the host).
last = lines[-1].split('scheduling: ')[1].strip() if lines else 'none logged'
steady, _, stop = last.partition('; stopping (apart) ')
print('  lateness of the turns      %s' % steady.split('; since the last report')[0])
print('    each minute:')
for l in lines[:-1]:
    print('      %s' % l.split('; since the last report ')[1].strip())
print('    turns of the stop        %s (apart, not in the figures above)' % (stop or 'none'))
print('  CPU                        %.1f s in %.0f s: %.2f cores on average' % (cpu, wall, cpu / wall))
print('  peak RSS                   %.0f MiB' % (max(x['hwm_kb'] for x in s) / 1024))
print('  threads                    at most %d' % max(x['threads'] for x in s))
print('  open files                 at most %d' % max(x['files'] for x in s))
print('  change-to-file, venue v1   %d changes: p50 %.2f s, p99 %.2f s, max %.2f s; %d made over 25 s before the stop not in a file' % (w['changes'], pct(lat, .5), pct(lat, .99), max(lat) if lat else float('nan'),
                       w['not_in_file_at_stop']))
EOF

echo "  final pass (ferry run --once) and every change against the simulators:"
"$bin/ferry" run --once --config "$work/ferry.ini" 2>> "$work/ferry.err" ||
  { echo "ferry run --once failed"; tail -20 "$work/ferry.err"; exit 1; }
python3 bench/scale_watch.py verify "$dh_port" "$tc_port" "$work/all.jsonl"
