#!/usr/bin/env python3
"""gzip_n.py IN OUT: OUT is IN compressed like `gzip -9n` (no name, no timestamp), as Debian
wants the files in /usr/share/doc and /usr/share/man: the same bytes at every build."""
import gzip
import sys


def write_gzip(path, data):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                 compresslevel=9, mtime=0) as gz:
        gz.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gzip_n.py IN OUT")
    with open(sys.argv[1], "rb") as f:
        write_gzip(sys.argv[2], f.read())
