#!/usr/bin/env python3
"""Reads every file sink_erp_csv left in a drop folder with Python's csv module (not ours).

Usage: collect_csv.py DIR
Prints one JSON object:
  {"files": [names of *.csv files], "others": [every other entry, e.g. a left-over .tmp],
   "rows": [[order_id, updated_at, status, previous_version, item_count, file], ...]}
Columns are found by their header (layout duckhub_order). A file that is not UTF-8, not strict
RFC 4180 CSV, or lacks one of the columns makes the script fail (exit 1, reason on stderr).
"""
import csv
import io
import json
import os
import sys

COLUMNS = ('order_id', 'updated_at', 'status', 'previous_version', 'item_count')


def main():
    folder = sys.argv[1]
    files, others, rows = [], [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not (name.endswith('.csv') and not name.startswith('.') and os.path.isfile(path)):
            others.append(name)
            continue
        files.append(name)
        text = open(path, 'rb').read().decode('utf-8-sig')
        try:
            table = list(csv.reader(io.StringIO(text, newline=''), delimiter=',', quotechar='"',
                                    doublequote=True, strict=True))
        except csv.Error as e:
            sys.exit('%s: %s' % (name, e))
        if not table:
            sys.exit('%s: empty file' % name)
        header = table[0]
        try:
            at = [header.index(c) for c in COLUMNS]
        except ValueError:
            sys.exit('%s: missing one of %s in header %s' % (name, COLUMNS, header))
        for n, row in enumerate(table[1:], start=2):
            if len(row) != len(header):
                sys.exit('%s: row %d has %d cells, header has %d' % (name, n, len(row), len(header)))
            rows.append([row[i] for i in at] + [name])
    json.dump({'files': files, 'others': others, 'rows': rows}, sys.stdout, ensure_ascii=False)


if __name__ == '__main__':
    main()
