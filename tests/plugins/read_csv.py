#!/usr/bin/env python3
"""An independent reader for the CSV files sink_erp_csv writes: Python's csv module, not ours.

Usage: read_csv.py FILE [DELIMITER]
Prints one JSON object: {"bom": bool, "crlf": n, "bare_lf": n, "rows": [[cell, ...], ...]}.
`crlf` and `bare_lf` count record ends outside quoted cells, so that line breaks inside cells do
not count. DELIMITER is ',' (default), ';' or 'tab'.
"""
import csv
import io
import json
import sys


def record_ends(text, delimiter):
    crlf = bare_lf = 0
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and c == '\r' and i + 1 < len(text) and text[i + 1] == '\n':
            crlf += 1
            i += 1
        elif not quoted and c == '\n':
            bare_lf += 1
        i += 1
    return crlf, bare_lf


def main():
    path = sys.argv[1]
    delimiter = sys.argv[2] if len(sys.argv) > 2 else ','
    if delimiter == 'tab':
        delimiter = '\t'
    raw = open(path, 'rb').read()
    bom = raw.startswith(b'\xef\xbb\xbf')
    text = raw.decode('utf-8-sig')  # fails loudly on anything that is not UTF-8
    crlf, bare_lf = record_ends(text, delimiter)
    rows = list(csv.reader(io.StringIO(text, newline=''), delimiter=delimiter, quotechar='"',
                           doublequote=True, strict=True))
    json.dump({'bom': bom, 'crlf': crlf, 'bare_lf': bare_lf, 'rows': rows}, sys.stdout,
              ensure_ascii=False)


if __name__ == '__main__':
    main()
