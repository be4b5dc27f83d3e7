#!/usr/bin/env python3
"""Verifies a Standard Webhooks signature independently of Ferry (hmac, hashlib, base64 only).

usage: verify_signature.py SECRET_FILE ID_FILE TIMESTAMP_FILE BODY_FILE SIGNATURE_FILE
Exit 0 when one of the signature header's "v1,<base64>" entries matches, 1 otherwise.
"""
import base64
import hashlib
import hmac
import sys


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    secret, msg_id, timestamp, body, header = (read(p) for p in sys.argv[1:6])
    secret = secret.decode()
    key = base64.b64decode(secret[len("whsec_"):], validate=True) \
        if secret.startswith("whsec_") else secret.encode()
    signed = msg_id + b"." + timestamp + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in header.decode().split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            print("valid")
            return 0
    print("invalid: expected v1," + expected + ", got " + header.decode())
    return 1


if __name__ == "__main__":
    sys.exit(main())
