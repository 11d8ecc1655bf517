#!/usr/bin/env python3
"""Memory check (issue 9): a node's resident memory while it mints and validates N distinct
tokens. Each token is minted with client_credentials and validated once at userinfo, so every
validation misses the cache and adds an entry. The in-process cache is bounded (16 MiB by
default), so growth must stay bounded however many tokens pass through.

Inputs (environment): BG_URL, BG_PID (the server's process id), BG_CLIENT_ID,
BG_CLIENT_SECRET; optional BG_TOKENS (default 60000), BG_WARMUP (2000), BG_THREADS (16).
Prints the resident set before and after, and exits non-zero if it grew by BG_LIMIT_MIB or more
(default 24).
"""

import base64
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request

URL = os.environ["BG_URL"]
PID = os.environ["BG_PID"]
CLIENT = os.environ["BG_CLIENT_ID"]
SECRET = os.environ["BG_CLIENT_SECRET"]
TOKENS = int(os.environ.get("BG_TOKENS", "60000"))
WARMUP = int(os.environ.get("BG_WARMUP", "2000"))
THREADS = int(os.environ.get("BG_THREADS", "16"))
LIMIT_MIB = float(os.environ.get("BG_LIMIT_MIB", "24"))

BASIC = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
BODY = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def one():
    req = urllib.request.Request(
        f"{URL}/api/auth/oauth/token",
        data=BODY,
        headers={"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.load(r)["access_token"]
    req = urllib.request.Request(
        f"{URL}/api/auth/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def run(n):
    left = [n]
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                one()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"memory check: requests failed: {errors[:3]}")


start = time.time()
run(WARMUP)
before = rss_kib()
run(TOKENS)
after = rss_kib()
grown = (after - before) / 1024
print(
    f"memory check: {TOKENS} tokens minted and validated in {time.time() - start:.0f} s; "
    f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB (+{grown:.1f} MiB, limit {LIMIT_MIB} MiB)"
)
if grown >= LIMIT_MIB:
    sys.exit(1)
