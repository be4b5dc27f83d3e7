#!/usr/bin/env python3
"""The measuring side of bench/run_scale.sh (see there).

  scale_watch.py watch PID ERP_DIR DUCKHUB_PORT VENUE STOP_FILE OUT_JSON
      Until STOP_FILE exists: samples /proc/PID once a second (CPU seconds, RSS, threads, open
      files), makes one change in VENUE of the DuckHub simulator every 2 s, and watches ERP_DIR
      (sink_erp_csv, layout duckhub_order, fed by that venue alone) every 100 ms for the rows that
      appear; writes the samples and, per change, when it was made and when its row appeared.
  scale_watch.py verify DUCKHUB_PORT TRADECLOUD_PORT SINK_JSONL
      Every order of DuckHub and every order and shipment of Tradecloud at its current version in
      the test_sink output (by key and version); prints the counts, exits 1 when one is missing.
"""
import csv
import datetime
import io
import json
import os
import sys
import time
import urllib.request


def http(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request('http://127.0.0.1:%d%s' % (port, path), data=data, method=method,
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read().decode())


def epoch(iso):
    return datetime.datetime.strptime(iso, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()


def proc(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    ticks = os.sysconf('SC_CLK_TCK')
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            status[k] = v.strip()
    return {'t': time.time(), 'cpu': cpu, 'rss_kb': int(status['VmRSS'].split()[0]),
            'hwm_kb': int(status['VmHWM'].split()[0]), 'threads': int(status['Threads']),
            'files': len(os.listdir('/proc/%d/fd' % pid))}


def rows(folder, seen_files, first_seen):
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.csv') or name.startswith('.') or name in seen_files:
            continue
        seen_files.add(name)
        text = open(os.path.join(folder, name), 'rb').read().decode('utf-8-sig')
        table = list(csv.reader(io.StringIO(text, newline='')))
        at = [table[0].index(c) for c in ('order_id', 'updated_at')]
        now = time.time()
        for row in table[1:]:
            first_seen.setdefault((row[at[0]], row[at[1]]), now)


def watch(pid, erp, port, venue, stop_file, out):
    samples, changes, seen_files, first_seen = [], [], set(), {}
    next_sample = next_change = time.time()
    while not os.path.exists(stop_file):
        now = time.time()
        if now >= next_sample:
            try:
                samples.append(proc(pid))
            except OSError:
                break
            next_sample += 1
        if now >= next_change:
            made = time.time()
            for oid in http(port, 'POST', '/_sim/change', {'count': 1, 'venue': venue})['changed']:
                changes.append({'id': oid, 'made': made})
            next_change += 2
        rows(erp, seen_files, first_seen)
        time.sleep(0.1)
    # The version each change produced, from the simulator's state (its updatedAt).
    state = http(port, 'GET', '/_sim/state?venue=' + venue)['venues'][0]['orders']
    versions = {}
    for o in state:
        versions[o['id']] = o['updatedAt']
    rows(erp, seen_files, first_seen)
    latencies, undelivered = [], 0
    by_id = {}
    for (oid, updated), seen in first_seen.items():
        by_id.setdefault(oid, []).append((updated, seen))
    stopped = time.time()
    for c in changes:
        # The first row of that order stamped at or after the change was made.
        found = [seen - epoch(u) for u, seen in by_id.get(c['id'], []) if epoch(u) >= c['made'] - 1]
        if found:
            latencies.append(min(found))
        elif c['made'] < stopped - 25:  # polled at least once since (20 s interval)
            undelivered += 1
    json.dump({'samples': samples, 'latencies': latencies, 'changes': len(changes),
               'not_in_file_at_stop': undelivered}, open(out, 'w'))


def verify(dh_port, tc_port, sink):
    have = set()
    with open(sink) as f:
        for line in f:
            e = json.loads(line)
            have.add((e['key'], e['version']))
    missing, total = {}, {}
    dh = http(dh_port, 'GET', '/_sim/state')
    for v in dh['venues']:
        for o in v['orders']:
            total['duckhub orders'] = total.get('duckhub orders', 0) + 1
            if (o['id'], o['updatedAt']) not in have:
                missing['duckhub orders'] = missing.get('duckhub orders', 0) + 1
    tc = http(tc_port, 'GET', '/_sim/state')
    for kind in ('orders', 'shipments'):
        for o in tc[kind]:
            total['tradecloud ' + kind] = total.get('tradecloud ' + kind, 0) + 1
            if (o['id'], o['lastUpdatedAt']) not in have:
                missing['tradecloud ' + kind] = missing.get('tradecloud ' + kind, 0) + 1
    for k in sorted(total):
        print('  %-22s %7d in the simulator, %d missing from the sink' % (k, total[k],
                                                                          missing.get(k, 0)))
    return 1 if missing else 0


if __name__ == '__main__':
    if sys.argv[1] == 'watch':
        watch(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6],
              sys.argv[7])
    else:
        sys.exit(verify(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
