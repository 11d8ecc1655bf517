#!/usr/bin/env python3
"""`cargo xtask chaos` (issue 14 items 1 and 2, docs/security.md "Three nodes under fire"): three
`buzzgate serve` nodes on one Postgres and one Redis of their own, a client spreading requests
across them, the races of SPEC 11 and faults under load.

It starts its own Redis (`redis-server`, no persistence) and its own Postgres cluster (`initdb`
in a temporary directory, `fsync=on`) on free loopback ports; it never touches the services on
5432 and 6379. Then, on three nodes (BUZZGATE_REFRESH_GRACE_SECONDS=3, limits raised, one issuer):

  a. one authorization code redeemed by 200 concurrent requests: one 200, the rest
     invalid_grant, no 5xx; the winner's tokens refused afterwards on every node (replay);
  b. one refresh token used by 100 concurrent requests inside the grace window: each 200 or
     invalid_grant, no 5xx, one live head in the family (SQL); after the window, reuse of the
     original revokes the family and every node refuses every token of it within 1 s;
  c. 10,000 Buzz spends (plus 1,000 concurrent duplicates) from 64 workers against one consent
     capped at 5,000: exactly 5,000 charged, the ledger (SQL) equals the balance change, no key
     charged twice, resent keys replayed or refused, never charged again;
  d. a change on node A seen by B and C: token revocation (CHAOS_REVOKE_TRIALS, 1,000), secret
     rotation, app deletion, consent revocation and a lowered cap (CHAOS_TRIALS, 50 each):
     the worst case must stay under 1 s;
  e. faults under load (W1 client_credentials + W4 introspection + revocations on every node):
     Redis stopped for 10 s, Postgres stopped (immediate) for 5 s, one node killed with -9 and
     restarted. No 500, 503 only with Retry-After, no committed token lost, no revoked token
     accepted, recovery within 5 s without restarting a node.

Prints a Markdown table, writes target/chaos/summary.md and summary.json, and exits 1 when an
expectation fails. Without redis-server or the Postgres binaries it prints `SKIP chaos: …` and
exits 0 (1 with BUZZGATE_REQUIRE_SERVICES=1).

Environment: BUZZGATE_BIN (default target/release/buzzgate), CHAOS_PG_BIN (the directory of
initdb/pg_ctl; default the newest /usr/lib/postgresql/*/bin), CHAOS_REVOKE_TRIALS (1000),
CHAOS_TRIALS (50), CHAOS_SPENDS (10000), CHAOS_CAP (5000), CHAOS_REVOKE_BUDGET_S (75: the
revocation trials stop there and say how many ran).
"""

import glob
import hashlib
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bgharness import (OAUTH, RAISED_LIMITS, Node, authorize, basic, clean_env, code_flow, free_port,  # noqa: E402
                       log, sign_in)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
OUT = os.path.join(TARGET, "chaos")
BIN = os.environ.get("BUZZGATE_BIN") or os.path.join(TARGET, "release", "buzzgate")
REQUIRE = os.environ.get("BUZZGATE_REQUIRE_SERVICES") == "1"
REVOKE_TRIALS = int(os.environ.get("CHAOS_REVOKE_TRIALS", "1000"))
TRIALS = int(os.environ.get("CHAOS_TRIALS", "50"))
SPENDS = int(os.environ.get("CHAOS_SPENDS", "10000"))
CAP = int(os.environ.get("CHAOS_CAP", "5000"))
REVOKE_BUDGET_S = float(os.environ.get("CHAOS_REVOKE_BUDGET_S", "75"))
GRACE_S = 3
PROPAGATION_BOUND_S = 1.0  # SPEC 11 / issue 14: a change on one node is seen everywhere within 1 s
RECOVERY_BOUND_S = 5.0
POLL_LIMIT_S = 3.0  # how long a propagation probe keeps asking before it records a miss
PASSWORD = "chaos-password-0123456789"
REDIRECT = "http://127.0.0.1:9/callback"
INTROSPECT = f"{OAUTH}/introspect"
TOKEN = f"{OAUTH}/token"
REVOKE = f"{OAUTH}/revoke"
SPEND = "/api/v1/buzz/spend"


class Interrupted(Exception):
    pass


def on_sigterm(*_):
    raise Interrupted("SIGTERM")


# --- HTTP with keep-alive ------------------------------------------------------------------


class Http:
    """HTTP/1.1 over loopback with one kept-alive connection per (thread, node): tens of
    thousands of requests without running out of ephemeral ports. A transport failure is
    status 0 with the exception as the body."""

    def __init__(self):
        self.local = threading.local()
        self.epochs = {}  # (host, port) -> generation; `reset` makes older connections unusable

    def reset(self, base):
        """Forget every thread's connections to `base` (its process was killed)."""
        u = urllib.parse.urlsplit(base)
        self.epochs[(u.hostname, u.port)] = self.epochs.get((u.hostname, u.port), 0) + 1

    def _conns(self):
        c = getattr(self.local, "conns", None)
        if c is None:
            c = self.local.conns = {}
        return c

    def request(self, base, method, path, form=None, json_body=None, headers=None, timeout=10.0,
                fresh=False, retry=True):
        u = urllib.parse.urlsplit(base)
        key = (u.hostname, u.port)
        conns = self._conns()
        epoch = self.epochs.get(key, 0)
        conn = None if fresh else conns.pop(key, None)
        if conn is not None and getattr(conn, "epoch", 0) != epoch:
            conn.close()
            conn = None
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            conn.epoch = epoch
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        h = dict(headers or {})
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read().decode(errors="replace")
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close or fresh:
                conn.close()
            else:
                conns[key] = conn
            return r.status, hdrs, data
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            # A kept-alive connection the server closed meanwhile: once more on a new one.
            if reused and retry and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError,
                                                   ConnectionResetError)):
                return self.request(base, method, path, form, json_body, headers, timeout, fresh, False)
            return 0, {}, f"{type(e).__name__}: {e}"


HTTP = Http()


def jbody(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}


def err_code(text):
    return jbody(text).get("error") if text.startswith("{") else None


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


# --- services of our own -------------------------------------------------------------------


def run_as_pg(cmd, **kw):
    """Postgres refuses to run as root: as root, run its tools as the `postgres` user."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def pg_bin_dir():
    d = os.environ.get("CHAOS_PG_BIN")
    if d:
        return d if os.path.exists(os.path.join(d, "initdb")) else None
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    if shutil.which("pg_config"):
        r = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        d = r.stdout.strip()
        if d and os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


class Postgres:
    """A throwaway cluster in a temporary directory, on a free port, trust auth on loopback."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="buzzgate-chaos-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.started = False
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def init(self):
        r = run_as_pg([os.path.join(self.bindir, "initdb"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                       "-D", self.data], timeout=120)
        if r.returncode != 0:
            raise RuntimeError("initdb: " + r.stdout[-1000:] + r.stderr[-1000:])

    def start(self):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100"
        r = run_as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "pg.log"),
                       "-o", opts, "-w", "-t", "60", "start"], timeout=90)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start: " + r.stdout[-1000:] + r.stderr[-1000:] + self.log_tail())
        self.started = True

    def stop(self, mode="fast"):
        if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.started = False
            return
        run_as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                  timeout=90)
        self.started = False

    def log_tail(self, n=1500):
        try:
            with open(os.path.join(self.dir, "pg.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def sql(self, query):
        """Rows of `query` as lists of strings (psql unaligned, tab-separated)."""
        psql = shutil.which("psql") or os.path.join(self.bindir, "psql")
        r = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                            "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr.strip()} in {query}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def scalar(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def cleanup(self):
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.proc = None

    def start(self, timeout=15):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", self.tmp, "--logfile", os.path.join(self.tmp, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.ping():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- the cluster ---------------------------------------------------------------------------


class Cluster:
    def __init__(self, pg, redis, tmp):
        self.tmp = tmp
        ports = [free_port() for _ in range(3)]
        env = clean_env({
            "DATABASE_URL": pg.url,
            "REDIS_URL": redis.url,
            "BUZZGATE_ISSUER": f"http://127.0.0.1:{ports[0]}",
            "BUZZGATE_SIGNING_KEY_FILE": os.path.join(tmp, "key.pem"),
            "BUZZGATE_REFRESH_GRACE_SECONDS": str(GRACE_S),
            **RAISED_LIMITS,
            "RUST_LOG": "warn",
        })
        self.nodes = [Node(BIN, env, tmp, p, name=f"node{i}") for i, p in enumerate(ports)]
        self.bases = [n.base for n in self.nodes]
        self.live = [True, True, True]
        self.rr_counter = itertools.count()

    def start(self):
        self.nodes[0].cli("migrate")
        for n in self.nodes:
            n.start()

    def rr(self):
        """The next live node, round robin."""
        for _ in range(6):
            i = next(self.rr_counter) % 3
            if self.live[i]:
                return i
        return 0

    def stop(self):
        for n in self.nodes:
            try:
                n.stop()
            except Exception:  # noqa: BLE001 - cleanup goes on
                n.kill9()


# --- calls ---------------------------------------------------------------------------------


class World:
    """Who and what the tests use, made through the CLI and over HTTP."""

    def __init__(self, cl, pg):
        self.cl = cl
        self.pg = pg
        n0 = cl.nodes[0]
        for u in ("alice", "bob", "carol", "spender"):
            n0.cli("user", "add", u, "--password-stdin", stdin=PASSWORD + "\n")
        n0.cli("buzz", "credit", "spender", "1000000")
        n0.cli("buzz", "credit", "carol", "1000000000")

        def app(name, *extra, owner="alice"):
            a = json.loads(n0.cli("client", "add", "--owner", owner, "--name", name, "--redirect-uri", REDIRECT,
                                  *extra, "--json"))
            return (a["clientId"], a["clientSecret"])

        self.app = app("chaos app", "--grant", "client_credentials")      # codes, refresh, W1, revocations
        self.rotating = app("rotating app", "--grant", "client_credentials")
        self.rs = app("chaos resource server", "--resource-server")
        self.spend_app = app("spend app")
        self.consent_app = app("connected app")
        self.cap_app = app("capped app")
        self.browsers = {}
        self.sessions = {}
        for u in ("alice", "bob", "carol", "spender"):
            self.sign_in(u)

    def sign_in(self, user):
        op, jar = sign_in(self.cl.bases[0], user, PASSWORD)
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        s, _, body = HTTP.request(self.cl.bases[0], "GET", "/api/v1/session", headers={"Cookie": cookie})
        if s != 200:
            raise RuntimeError(f"session of {user}: {s} {body[:200]}")
        self.browsers[user] = op
        self.sessions[user] = {"Cookie": cookie, "X-CSRF-Token": jbody(body)["csrfToken"]}

    def flow(self, user, app, scope, approve=None, node=0):
        return code_flow(self.browsers[user], self.cl.bases[node], app, scope, REDIRECT, approve)

    def user_id(self, user):
        return int(self.pg.scalar(f"SELECT id FROM users WHERE username = '{user}'"))

    # the endpoints

    def introspect_raw(self, node, token, retry=True, timeout=10.0):
        return HTTP.request(self.cl.bases[node], "POST", INTROSPECT, form={"token": token},
                            headers={"Authorization": basic(*self.rs)}, retry=retry, timeout=timeout)

    def introspect(self, node, token, retry=True, timeout=10.0):
        """(status, active or None, headers)."""
        s, h, body = self.introspect_raw(node, token, retry, timeout)
        return s, (jbody(body).get("active") if s == 200 else None), h

    def client_credentials(self, node, app=None, retry=True, timeout=10.0):
        app = app or self.app
        return HTTP.request(self.cl.bases[node], "POST", TOKEN, form={"grant_type": "client_credentials"},
                            headers={"Authorization": basic(*app)}, retry=retry, timeout=timeout)

    def revoke(self, node, token, app=None, retry=True, timeout=10.0):
        return HTTP.request(self.cl.bases[node], "POST", REVOKE, form={"token": token},
                            headers={"Authorization": basic(*(app or self.app))}, retry=retry, timeout=timeout)

    def spend(self, node, token, key, amount=1, retry=True):
        return HTTP.request(self.cl.bases[node], "POST", SPEND,
                            form={"token": token, "amount": str(amount), "purpose": "ai_services",
                                  "idempotency_key": key},
                            headers={"Authorization": basic(*self.rs)}, retry=retry)

    def account(self, node, user, method, path, json_body=None):
        return HTTP.request(self.cl.bases[node], method, path, json_body=json_body, headers=self.sessions[user])


# --- results -------------------------------------------------------------------------------


class Results:
    def __init__(self):
        self.rows = []      # the table: test, what was seen, expectation, pass
        self.data = {}      # everything measured, for summary.json
        self.failures = []

    def info(self, test, seen, note):
        """A measurement the issue sets no bound for: shown, never failing."""
        self.rows.append({"test": test, "seen": seen, "expected": note, "ok": None})
        log(f"   [info] {test}: {seen} ({note})")

    def expect(self, test, seen, expectation, ok):
        self.rows.append({"test": test, "seen": seen, "expected": expectation, "ok": bool(ok)})
        mark = "ok  " if ok else "FAIL"
        log(f"   [{mark}] {test}: {seen} (expected {expectation})")
        if not ok:
            self.failures.append(f"{test}: saw {seen}, expected {expectation}")


def counts(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


def fmt_counts(c):
    return ", ".join(f"{k}: {v}" for k, v in c.items()) or "none"


def run_threads(n, target, args_list=None):
    threads = [threading.Thread(target=target, args=(args_list[i] if args_list else (i,)), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)


def classify(status, body):
    """A response as `200`, `400 invalid_grant`, `503`… (the error code when there is one)."""
    if status == 0:
        return "transport error"
    code = err_code(body) if status >= 400 else None
    return f"{status} {code}" if code else str(status)


def wait_refused(w, tokens, nodes, trigger=None, limit=POLL_LIMIT_S):
    """Polls each (token, node) pair in its own thread until introspection says inactive.
    The threads are started and connected first; then `trigger()` runs (the revoking request)
    and the clock starts when it returns. Returns (worst latency in s, or None when some pair
    was still active at `limit`; the pairs still active); `wait_refused.last_active` is the
    latest moment a pair was still seen active (a lower bound of the worst latency)."""
    pairs = [(t, n) for t in tokens for n in nodes]
    lat = {}
    last_active = {}
    go = threading.Event()
    ready = threading.Barrier(len(pairs) + 1)
    clock = {"t0": time.monotonic()}

    def poll(i):
        tok, node = pairs[i]
        HTTP.request(w.cl.bases[node], "GET", "/healthz")  # a kept-alive connection, before the clock starts
        ready.wait()
        go.wait()
        t0 = clock["t0"]
        while time.monotonic() - t0 < limit:
            sent = time.monotonic() - t0
            s, active, _ = w.introspect(node, tok)
            if s == 200 and active is False:
                lat[i] = time.monotonic() - t0
                return
            if active:
                last_active[i] = sent
            time.sleep(0.002)

    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(len(pairs))]
    for t in threads:
        t.start()
    ready.wait()
    wait_refused.trigger_result = trigger() if trigger else None
    clock["t0"] = time.monotonic()
    go.set()
    for t in threads:
        t.join(timeout=limit + 30)
    still = [pairs[i] for i in range(len(pairs)) if i not in lat]
    wait_refused.last_active = max(last_active.values()) if last_active else None
    wait_refused.t0 = clock["t0"]
    return (max(lat.values()) if lat and not still else None), still


# --- a. one code, 200 redemptions ----------------------------------------------------------


def race_code(w, res):
    log("== a. one authorization code redeemed by 200 concurrent requests across 3 nodes")
    cl = w.cl
    w.flow("alice", w.app, "UserRead BuzzRead", approve={"remember": "true"})  # the consent, remembered
    code, verifier = authorize(w.browsers["alice"], cl.bases[0], w.app, "UserRead BuzzRead", REDIRECT)
    n = 200
    barrier = threading.Barrier(n)
    out = [None] * n

    def redeem(i):
        barrier.wait()
        out[i] = HTTP.request(cl.bases[i % 3], "POST", TOKEN,
                              form={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                    "redirect_uri": REDIRECT},
                              headers={"Authorization": basic(*w.app)}, fresh=True, retry=False, timeout=30)

    t0 = time.monotonic()
    run_threads(n, redeem)
    took = time.monotonic() - t0
    seen = counts(classify(s, b) for s, _, b in out)
    log(f"   {n} requests in {took:.2f} s: {fmt_counts(seen)}")
    winners = [jbody(b) for s, _, b in out if s == 200]
    fivexx = sum(1 for s, _, _ in out if s >= 500)
    res.data["a_code_race"] = {"requests": n, "seconds": round(took, 3), "statuses": seen}
    res.expect("a. code x200: token responses", len(winners), "exactly 1", len(winners) == 1)
    res.expect("a. code x200: the others", fmt_counts({k: v for k, v in seen.items() if k != "200"}),
               f"{n - 1} x 400 invalid_grant", seen.get("400 invalid_grant", 0) == n - 1)
    res.expect("a. code x200: 5xx", fivexx, "0", fivexx == 0)
    if winners:
        tokens = [winners[0]["access_token"], winners[0].get("refresh_token")]
        tokens = [t for t in tokens if t]
        worst, still = wait_refused(w, tokens, [0, 1, 2])
        res.data["a_code_race"]["winner_refused_after_s"] = worst
        res.expect("a. code x200: winner's access and refresh tokens after the replays",
                   "refused on every node" if not still else f"{len(still)} (token, node) still active after "
                   f"{POLL_LIMIT_S:.0f} s", "refused (introspection active=false) on all 3 nodes", not still)


# --- b. one refresh token, 100 uses --------------------------------------------------------


def race_refresh(w, res):
    log(f"== b. one refresh token used by 100 concurrent requests (grace {GRACE_S} s)")
    cl = w.cl
    first = w.flow("alice", w.app, "UserRead BuzzRead")
    rt = first["refresh_token"]
    fam = w.pg.scalar(f"SELECT family_id FROM tokens WHERE hash = '\\x{token_hash(rt)}'::bytea")
    n = 100
    barrier = threading.Barrier(n)
    out = [None] * n

    def use(i):
        barrier.wait()
        out[i] = HTTP.request(cl.bases[i % 3], "POST", TOKEN,
                              form={"grant_type": "refresh_token", "refresh_token": rt},
                              headers={"Authorization": basic(*w.app)}, fresh=True, retry=False, timeout=30)

    t0 = time.monotonic()
    run_threads(n, use)
    took = time.monotonic() - t0
    seen = counts(classify(s, b) for s, _, b in out)
    log(f"   {n} requests in {took:.2f} s: {fmt_counts(seen)}")
    oks = [jbody(b) for s, _, b in out if s == 200]
    other = {k: v for k, v in seen.items() if k not in ("200", "400 invalid_grant")}
    d = res.data["b_refresh_race"] = {"requests": n, "seconds": round(took, 3), "statuses": seen}
    res.expect("b. refresh x100 in the window: answers", fmt_counts(seen), "each 200 or 400 invalid_grant, none 5xx",
               not other and oks)
    heads = w.pg.sql("SELECT encode(hash, 'hex') FROM tokens WHERE kind = 'refresh' AND family_id = "
                     f"'{fam}' AND revoked_at IS NULL AND rotated_at IS NULL") if fam else []
    d["live_heads"] = len(heads)
    d["family_rows"] = int(w.pg.scalar(f"SELECT count(*) FROM tokens WHERE family_id = '{fam}'")) if fam else 0
    res.expect("b. refresh x100: live heads in the family (SQL)", len(heads), "exactly 1", len(heads) == 1)
    issued_refresh = {token_hash(o["refresh_token"]): o["refresh_token"] for o in oks if o.get("refresh_token")}
    head_tokens = [issued_refresh[h[0]] for h in heads if h[0] in issued_refresh]
    # After the window: the original again. The family goes, on every node.
    wait = max(0.0, GRACE_S + 1.0 - (time.monotonic() - (t0 + took)))
    log(f"   waiting {wait:.1f} s for the grace window to pass")
    time.sleep(wait)
    family = [first["access_token"]] + [o["access_token"] for o in oks] + list(issued_refresh.values())
    # Warm every node's caches with what is live now, so the test is of invalidation.
    live_before = []
    for tok in family:
        for node in range(3):
            s, active, _ = w.introspect(node, tok)
            if active:
                live_before.append((tok, node))
    live_tokens = sorted({t for t, _ in live_before})
    d["live_tokens_before_reuse"] = len(live_tokens)
    # Latency: a sample polled tightly on every node (the head refresh token(s), the original's
    # access token and a few successors' access tokens) from the moment the reuse is answered.
    sample = list(dict.fromkeys(head_tokens + [first["access_token"]] + [o["access_token"] for o in oks[:6]]))
    sample = [t for t in sample if t in live_tokens] or sample

    def reuse():
        return HTTP.request(cl.bases[0], "POST", TOKEN, form={"grant_type": "refresh_token", "refresh_token": rt},
                            headers={"Authorization": basic(*w.app)})

    worst, still = wait_refused(w, sample, [0, 1, 2], trigger=reuse)
    t_reuse = wait_refused.t0
    s, _, body = wait_refused.trigger_result
    res.expect("b. reuse of the original after the window", classify(s, body), "400 invalid_grant",
               classify(s, body) == "400 invalid_grant")
    # Completeness: at 1 s, every token of the family, on every node.
    time.sleep(max(0.0, PROPAGATION_BOUND_S - (time.monotonic() - t_reuse)))
    t_check = time.monotonic() - t_reuse
    active_after = []
    lock = threading.Lock()
    pairs = [(t, n) for t in family for n in range(3)]

    def check(k):
        for i in range(k, len(pairs), 16):
            tok, node = pairs[i]
            s, active, _ = w.introspect(node, tok)
            if s != 200 or active is not False:
                with lock:
                    active_after.append((tok[:16], node, s, active))

    run_threads(16, check)
    t_done = time.monotonic() - t_reuse
    d.update({"reuse_refused_worst_s": worst, "last_seen_active_s": wait_refused.last_active,
              "sample_pairs": len(sample) * 3, "checked_pairs": len(pairs),
              "check_from_s": round(t_check, 3), "check_to_s": round(t_done, 3),
              "not_refused": active_after[:10]})
    log(f"   family of {len(family)} tokens ({len(live_tokens)} live before); sample refused on every node after "
        f"{'-' if worst is None else f'{worst * 1000:.0f} ms'} (last seen active at "
        f"{ms(wait_refused.last_active)}); all {len(pairs)} (token, node) checked at "
        f"{t_check:.2f}-{t_done:.2f} s: {len(active_after)} not refused")
    res.expect("b. family revoked by the reuse: worst time until every node refuses (sample)",
               "never" if worst is None else f"{worst * 1000:.0f} ms", "< 1000 ms",
               worst is not None and worst < PROPAGATION_BOUND_S)
    res.expect("b. family revoked: every token on every node, checked from 1 s",
               f"{len(pairs) - len(active_after)}/{len(pairs)} refused", "all refused", not active_after)


# --- c. spends against a cap ---------------------------------------------------------------


def race_spend(w, res):
    dups = SPENDS // 10
    log(f"== c. {SPENDS} Buzz spends (+{dups} concurrent duplicates) from 64 workers, one consent capped at {CAP}")
    limit = [{"type": "absolute", "limit": CAP}]
    tok = w.flow("spender", w.spend_app, "AIServices",
                 approve={"remember": "true", "buzz_limit": json.dumps(limit)})["access_token"]
    uid = w.user_id("spender")

    def balance():
        return int(w.pg.scalar(f"SELECT coalesce(sum(balance), 0) FROM buzz_balances WHERE user_id = {uid}"))

    before = balance()
    run_id = f"c{os.getpid()}-"
    keys = [f"{run_id}{i}" for i in range(SPENDS)]
    dup_of = set(random.Random(14).sample(range(SPENDS), dups))
    jobs = []
    for i, k in enumerate(keys):
        jobs.append(k)
        if i in dup_of:
            jobs.append(k)  # the same key right behind: another worker sends it at the same time
    jobs_iter = iter(list(enumerate(jobs)))
    lock = threading.Lock()
    out = [None] * len(jobs)

    def worker(_):
        while True:
            with lock:
                nxt = next(jobs_iter, None)
            if nxt is None:
                return
            j, key = nxt
            s, _, body = w.spend(w.cl.rr(), tok, key, retry=False)
            out[j] = (key, s, body)

    t0 = time.monotonic()
    run_threads(64, worker)
    took = time.monotonic() - t0

    def kind(s, body):
        if s == 200:
            return "200 replayed" if jbody(body).get("replayed") else "200 charged"
        return classify(s, body)

    seen = counts(kind(s, b) for _, s, b in out)
    charged = [k for k, s, b in out if kind(s, b) == "200 charged"]
    replayed = {k for k, s, b in out if kind(s, b) == "200 replayed"}
    log(f"   {len(jobs)} requests in {took:.1f} s ({len(jobs) / took:.0f}/s): {fmt_counts(seen)}")
    # Resend: keys that were charged and keys that were refused, each twice at once, to every node.
    charged_set = set(charged)
    refused = [k for k, s, b in out if kind(s, b) == "403 insufficient_funds" and k not in charged_set]
    rs = random.Random(15)
    again = rs.sample(sorted(charged_set), min(500, len(charged_set))) + \
        rs.sample(sorted(set(refused)), min(500, len(set(refused))))
    resend_jobs = iter(list(enumerate(again + again)))
    resend_out = [None] * (2 * len(again))

    def resend(_):
        while True:
            with lock:
                nxt = next(resend_jobs, None)
            if nxt is None:
                return
            j, key = nxt
            s, _, body = w.spend(w.cl.rr(), tok, key, retry=False)
            resend_out[j] = (key, s, body)

    run_threads(32, resend)
    resend_bad = [(k, s, b[:120]) for k, s, b in resend_out
                  if not ((k in charged_set and kind(s, b) == "200 replayed")
                          or (k not in charged_set and kind(s, b) == "403 insufficient_funds"))]
    ledger = w.pg.sql(f"SELECT count(*), coalesce(sum(amount), 0), count(DISTINCT idempotency_key) FROM buzz_ledger "
                      f"WHERE user_id = {uid} AND idempotency_key LIKE '{run_id}%'")[0]
    ledger_all = int(w.pg.scalar(f"SELECT coalesce(sum(amount), 0) FROM buzz_ledger WHERE user_id = {uid} "
                                 "AND refunded_at IS NULL"))
    ledger_keys = {r[0] for r in w.pg.sql(f"SELECT idempotency_key FROM buzz_ledger WHERE user_id = {uid}")}
    after = balance()
    rows, total, distinct = int(ledger[0]), int(ledger[1]), int(ledger[2])
    res.data["c_spend_race"] = {"requests": len(jobs), "keys": SPENDS, "duplicates": dups, "seconds": round(took, 2),
                                "statuses": seen, "cap": CAP, "balance_before": before, "balance_after": after,
                                "ledger_rows": rows, "ledger_sum": total, "resent": len(resend_out),
                                "resend_wrong": resend_bad[:10]}
    log(f"   ledger: {rows} rows, sum {total}, {distinct} keys; balance {before} -> {after}; "
        f"resent {len(resend_out)}: {len(resend_bad)} wrong")
    fivexx = sum(v for k, v in seen.items() if k[:1] == "5")
    other = {k: v for k, v in seen.items() if k not in ("200 charged", "200 replayed", "403 insufficient_funds")}
    res.expect("c. spends: charged", len(charged), f"exactly {CAP}", len(charged) == CAP)
    res.expect("c. spends: other answers", fmt_counts({k: v for k, v in seen.items() if k != "200 charged"}),
               "403 insufficient_funds or 200 replayed only (no 5xx)", not other and fivexx == 0)
    res.expect("c. spends: a key charged twice", len(charged) - len(charged_set), "0",
               len(charged) == len(charged_set))
    res.expect("c. spends: replayed answers for keys never charged", len(replayed - charged_set), "0",
               not (replayed - charged_set))
    res.expect("c. ledger (SQL): rows, sum, distinct keys", f"{rows}, {total}, {distinct}", f"{CAP}, {CAP}, {CAP}",
               rows == total == distinct == CAP and ledger_keys >= charged_set)
    res.expect("c. balance change = ledger sum", f"{before - after} = {ledger_all}", "equal",
               before - after == ledger_all == total)
    res.expect("c. resent keys (charged: replayed; refused: refused; never charged again)",
               f"{len(resend_out) - len(resend_bad)}/{len(resend_out)} as expected", "all",
               not resend_bad and len(resend_out) > 0)


# --- d. a change on node A, seen by B and C ------------------------------------------------


def propagation(name, trials, trial_fn, res, budget_s=None, target_trials=None):
    """Runs `trial_fn(i)` -> latency in s (None: not seen within POLL_LIMIT_S) up to `trials`
    times (or until `budget_s`); records the worst."""
    lats, misses, errors = [], 0, []
    t0 = time.monotonic()
    for i in range(trials):
        if budget_s and time.monotonic() - t0 > budget_s:
            break
        try:
            lat = trial_fn(i)
        except Exception as e:  # noqa: BLE001 - a broken trial is reported, not hidden
            errors.append(str(e)[:300])
            if len(errors) >= 5:
                break
            continue
        if lat is None:
            misses += 1
        else:
            lats.append(lat)
    ran = len(lats) + misses
    took = time.monotonic() - t0
    lats.sort()
    worst = lats[-1] if lats else None
    p50 = lats[len(lats) // 2] if lats else None
    p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))] if lats else None
    log(f"   {name}: {ran} trials in {took:.1f} s, p50 {ms(p50)}, p99 {ms(p99)}, worst {ms(worst)}, "
        f"not seen within {POLL_LIMIT_S:.0f} s: {misses}, broken trials: {len(errors)}")
    for e in errors[:3]:
        log(f"      broken: {e}")
    res.data.setdefault("d_propagation", {})[name] = {
        "trials": ran, "asked": target_trials or trials, "seconds": round(took, 1), "p50_ms": ms_num(p50),
        "p99_ms": ms_num(p99), "worst_ms": ms_num(worst), "misses": misses, "errors": errors[:5]}
    want = target_trials or trials
    label = f"d. {name}: worst of {ran} trials" + (f" (of {want} asked; time budget)" if ran < want else "")
    ok = misses == 0 and not errors and worst is not None and worst < PROPAGATION_BOUND_S
    res.expect(label, f"{ms(worst)} (p99 {ms(p99)}), misses {misses}, broken {len(errors)}", "< 1000 ms, no miss", ok)


def pct(xs):
    xs = sorted(xs)
    if not xs:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(xs[len(xs) // 2] * 1000, 1), "p99": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000, 1),
            "max": round(xs[-1] * 1000, 1)}


def ms(x):
    return "-" if x is None else f"{x * 1000:.0f} ms"


def ms_num(x):
    return None if x is None else round(x * 1000, 1)


def poll_until(check, nodes, t0, limit=POLL_LIMIT_S):
    """Asks `check(node)` (True: the change is seen) on each node in turn until all see it;
    the latency (from t0) of the last one, or None."""
    pending = list(nodes)
    worst = 0.0
    while pending:
        if time.monotonic() - t0 > limit:
            return None
        for node in list(pending):
            if check(node):
                worst = max(worst, time.monotonic() - t0)
                pending.remove(node)
        if pending:
            time.sleep(0.002)
    return worst


def others(a):
    return [n for n in range(3) if n != a]


def d_revoke(w, res):
    log("== d. changes on node A seen by B and C")

    def trial(i):
        a = i % 3
        s, _, body = w.client_credentials(w.cl.rr())
        if s != 200:
            raise RuntimeError(f"client_credentials: {s} {body[:200]}")
        tok = jbody(body)["access_token"]
        for n in others(a):  # cached as live on B and C
            s, active, _ = w.introspect(n, tok)
            if active is not True:
                raise RuntimeError(f"fresh token not active on node {n}: {s}")
        s, _, body = w.revoke(a, tok)
        t0 = time.monotonic()
        if s != 200:
            raise RuntimeError(f"revoke: {s} {body[:200]}")
        return poll_until(lambda n: w.introspect(n, tok)[1] is False, [a] + others(a), t0)

    propagation("token revocation", REVOKE_TRIALS, trial, res, budget_s=REVOKE_BUDGET_S)


def d_rotate(w, res):
    app = list(w.rotating)

    def trial(i):
        a = i % 3
        old = app[1]
        for n in others(a):
            s, _, body = w.client_credentials(n, tuple(app))
            if s != 200:
                raise RuntimeError(f"old secret before rotation on node {n}: {s} {body[:200]}")
        s, _, body = w.account(a, "alice", "POST", f"/api/v1/oauth/clients/{app[0]}/rotate-secret")
        t0 = time.monotonic()
        if s != 200:
            raise RuntimeError(f"rotate-secret: {s} {body[:200]}")
        app[1] = jbody(body)["clientSecret"]
        lat = poll_until(lambda n: w.client_credentials(n, (app[0], old))[0] in (400, 401), others(a), t0)
        for n in range(3):
            s, _, body = w.client_credentials(n, tuple(app))
            if s != 200:
                raise RuntimeError(f"new secret on node {n}: {s} {body[:200]}")
        return lat

    propagation("secret rotation", TRIALS, trial, res)


def d_delete(w, res):
    def trial(i):
        a = i % 3
        s, _, body = w.account(w.cl.rr(), "alice", "POST", "/api/v1/oauth/clients",
                               {"name": f"doomed {i}", "redirectUris": [REDIRECT], "grants": ["client_credentials"]})
        if s != 201:
            raise RuntimeError(f"create app: {s} {body[:200]}")
        app = (jbody(body)["clientId"], jbody(body)["clientSecret"])
        tok = None
        for n in others(a):
            s, _, body = w.client_credentials(n, app)
            if s != 200:
                raise RuntimeError(f"new app's client_credentials on node {n}: {s} {body[:200]}")
            tok = jbody(body)["access_token"]
        for n in others(a):
            if w.introspect(n, tok)[1] is not True:
                raise RuntimeError(f"new app's token not active on node {n}")
        s, _, body = w.account(a, "alice", "DELETE", f"/api/v1/oauth/clients/{app[0]}")
        t0 = time.monotonic()
        if s != 204:
            raise RuntimeError(f"delete app: {s} {body[:200]}")

        def gone(n):
            return w.introspect(n, tok)[1] is False and w.client_credentials(n, app)[0] in (400, 401)

        return poll_until(gone, others(a), t0)

    propagation("app deletion (its secret and its token)", TRIALS, trial, res)


def d_consent(w, res):
    cid = w.consent_app[0]

    def trial(i):
        a = i % 3
        t = w.flow("bob", w.consent_app, "UserRead", node=w.cl.rr())
        toks = [t["access_token"], t["refresh_token"]]
        for n in others(a):
            for tok in toks:
                if w.introspect(n, tok)[1] is not True:
                    raise RuntimeError(f"fresh token not active on node {n}")
        s, _, body = w.account(a, "bob", "DELETE", f"/api/v1/oauth/consents/{cid}")
        t0 = time.monotonic()
        if s != 204:
            raise RuntimeError(f"consent revoke: {s} {body[:200]}")
        return poll_until(lambda n: all(w.introspect(n, tok)[1] is False for tok in toks), others(a), t0)

    propagation("consent revocation (Connected Apps)", TRIALS, trial, res)


def d_cap(w, res):
    cid = w.cap_app[0]
    high = [{"type": "absolute", "limit": 1000000000}]
    low = [{"type": "absolute", "limit": 1}]
    tok = w.flow("carol", w.cap_app, "AIServices", approve={"remember": "true", "buzz_limit": json.dumps(high)})[
        "access_token"]
    keys = itertools.count()
    over_cap = [0]

    def spend_ok(n):
        s, _, body = w.spend(n, tok, f"cap-{os.getpid()}-{next(keys)}")
        if s == 200:
            return True
        if s == 403 and err_code(body) == "insufficient_funds":
            return False
        raise RuntimeError(f"spend: {s} {body[:200]}")

    def trial(i):
        a = i % 3
        s, _, body = w.account(a, "carol", "PUT", f"/api/v1/oauth/consents/{cid}/buzz-limit", high)
        if s != 200:
            raise RuntimeError(f"raise the cap: {s} {body[:200]}")
        if poll_until(spend_ok, others(a), time.monotonic()) is None:
            raise RuntimeError("a raised cap not seen on the other nodes within 3 s")
        s, _, body = w.account(a, "carol", "PUT", f"/api/v1/oauth/consents/{cid}/buzz-limit", low)
        t0 = time.monotonic()
        if s != 200:
            raise RuntimeError(f"lower the cap: {s} {body[:200]}")

        def refused(n):
            ok = spend_ok(n)
            if ok:
                over_cap[0] += 1
            return not ok

        return poll_until(refused, others(a), t0)

    propagation("cap edit (a spend over the new cap)", TRIALS, trial, res)
    res.data["d_propagation"]["cap edit (a spend over the new cap)"]["spends_charged_while_stale"] = over_cap[0]
    res.info("d. cap edit: spends charged on B or C before they saw the lowered cap",
             f"{over_cap[0]} in {TRIALS} trials (B and C probed back to back)",
             "docs/security.md: another node checks against the old cap for up to BUZZGATE_READ_CACHE_MS")


# --- e. faults under load ------------------------------------------------------------------


class Load:
    """W1 (client_credentials) and W4 (introspection) on every live node, and a revoker, with
    every answer counted against the phase it was sent in."""

    W1_THREADS = 4
    W4_THREADS = 4

    def __init__(self, w, seed_tokens):
        self.w = w
        self.phase = "start"
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.stats = {}  # phase -> {"requests", "statuses": {}, "bad": [...]}
        self.minted = list(seed_tokens)  # tokens answered 200
        self.minted_node = {}
        self.minted_when = {}  # token -> (phase, sent after the phase began (s), answered after (s))
        self.phase_started = time.monotonic()
        self.revoking = set()
        self.revoked = {}  # token -> monotonic time the revoke's 200 arrived
        self.uncertain = set()  # revoke answered other than 200: may or may not be revoked
        self.threads = []

    def record(self, phase, kind, status, headers, body, node, sent):
        took = time.monotonic() - sent
        label = classify(status, body)
        if status == 0 and not self.w.cl.live[node]:
            label = "severed by the kill"  # in flight to the node when it was killed
        with self.lock:
            st = self.stats.setdefault(phase, {"requests": 0, "statuses": {}, "bad": [], "by_kind": {},
                                               "latency": {}})
            st["requests"] += 1
            st["latency"].setdefault(kind, []).append(took)
            k = st["by_kind"].setdefault(kind, {})
            k[label] = k.get(label, 0) + 1
            st["statuses"][label] = st["statuses"].get(label, 0) + 1
            if status >= 500 and status != 503:
                st["bad"].append(f"{kind} node{node} {status} {body[:160]}")
            if status == 503 and "retry-after" not in headers:
                st["bad"].append(f"{kind} node{node} 503 without Retry-After")
            if status == 0 and self.w.cl.live[node]:
                st.setdefault("transport_live", 0)
                st["transport_live"] = st["transport_live"] + 1
                st.setdefault("transport_examples", []).append(f"{kind} node{node} {body[:120]}")

    def w1(self, _):
        while not self.stop_flag.is_set():
            node, phase, sent, began = self.w.cl.rr(), self.phase, time.monotonic(), self.phase_started
            s, h, body = self.w.client_credentials(node, retry=False, timeout=15)
            self.record(phase, "W1", s, h, body, node, sent)
            if s == 200:
                tok = jbody(body).get("access_token")
                if tok:
                    with self.lock:
                        self.minted.append(tok)
                        self.minted_node[tok] = node
                        self.minted_when[tok] = (phase, sent - began, time.monotonic() - sent)
            elif s in (0, 503):
                time.sleep(0.05)

    def w4(self, k):
        rng = random.Random(k)
        while not self.stop_flag.is_set():
            with self.lock:
                revoked = list(self.revoked.items())[-200:]
                pick_revoked = revoked and rng.random() < 0.3
                tok = rng.choice(revoked)[0] if pick_revoked else self.minted[-rng.randint(1, min(len(self.minted), 2000))]
            node, phase, sent = self.w.cl.rr(), self.phase, time.monotonic()
            s, h, body = self.w.introspect_raw(node, tok, retry=False, timeout=15)
            active = jbody(body).get("active") if s == 200 else None
            self.record(phase, "W4", s, h, body, node, sent)
            if s != 200:
                if s in (0, 503):
                    time.sleep(0.05)
                continue
            with self.lock:
                t_rev = self.revoked.get(tok)
                settled = tok not in self.revoking and tok not in self.uncertain
                st = self.stats[phase]
                if active and t_rev is not None and sent > t_rev + PROPAGATION_BOUND_S:
                    st["bad"].append(f"W4 node{node}: a token revoked {sent - t_rev:.2f} s before was active")
                    st["revoked_accepted"] = st.get("revoked_accepted", 0) + 1
                elif not active and t_rev is None and settled:
                    st["bad"].append(f"W4 node{node}: a live token (never revoked) was inactive")
                    st["live_refused"] = st.get("live_refused", 0) + 1

    def revoker(self, _):
        rng = random.Random(99)
        while not self.stop_flag.is_set():
            time.sleep(0.1)
            with self.lock:
                if len(self.minted) < 50:
                    continue
                tok = self.minted[-rng.randint(10, 50)]
                if tok in self.revoked or tok in self.revoking or tok in self.uncertain:
                    continue
                self.revoking.add(tok)
            node, phase, sent = self.w.cl.rr(), self.phase, time.monotonic()
            s, h, body = self.w.revoke(node, tok, retry=False, timeout=15)
            self.record(phase, "revoke", s, h, body, node, sent)
            with self.lock:
                self.revoking.discard(tok)
                if s == 200:
                    self.revoked[tok] = time.monotonic()
                else:
                    self.uncertain.add(tok)

    def start(self):
        for i in range(self.W1_THREADS):
            self.threads.append(threading.Thread(target=self.w1, args=(i,), daemon=True))
        for i in range(self.W4_THREADS):
            self.threads.append(threading.Thread(target=self.w4, args=(i,), daemon=True))
        self.threads.append(threading.Thread(target=self.revoker, args=(0,), daemon=True))
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)


def cluster_ok(w, need_ready=True):
    """Every live node ready (not degraded) and issuing a token."""
    for n in range(3):
        if not w.cl.live[n]:
            continue
        if need_ready:
            s, _, body = HTTP.request(w.cl.bases[n], "GET", "/readyz", timeout=2)
            if s != 200 or jbody(body).get("status") != "ready":
                return False
        if w.client_credentials(n, timeout=2)[0] != 200:
            return False
    return True


def probe_readyz(w):
    """Each node's /readyz: (status, body's status, Retry-After)."""
    out = [None] * 3

    def ask(n):
        t0 = time.monotonic()
        s, h, body = HTTP.request(w.cl.bases[n], "GET", "/readyz", timeout=15)
        out[n] = (s, jbody(body).get("status"), h.get("retry-after"), round((time.monotonic() - t0) * 1000))

    run_threads(3, ask)
    return out


def wait_recovery(w, t0, limit=30.0):
    """Seconds from t0 until the cluster is whole again (None: not within `limit`)."""
    while time.monotonic() - t0 < limit:
        if cluster_ok(w):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def faults(w, pg, redis, res):
    log("== e. faults under load (W1 client_credentials x4 + W4 introspection x4 + a revoker, all nodes)")
    seed = []
    for _ in range(100):
        s, _, body = w.client_credentials(w.cl.rr())
        if s == 200:
            seed.append(jbody(body)["access_token"])
    load = Load(w, seed)
    phases = []
    phase_len = {}
    recovery = {}
    readyz = {}
    clock = {"t": time.monotonic()}

    def enter(name, note=""):
        """Requests sent from now on count against `name`."""
        now = time.monotonic()
        if phases:
            phase_len[phases[-1]] = now - clock["t"]
        clock["t"] = now
        load.phase_started = now
        load.phase = name
        phases.append(name)
        log(f"   phase: {name}{note}")

    def recovered(what, t0):
        recovery[what] = wait_recovery(w, t0)
        log(f"   {what}: every node ready and issuing after {ms(recovery[what])}")
        time.sleep(max(0.0, 5 - (time.monotonic() - t0)))

    load.start()
    try:
        enter("baseline", " (5 s)")
        time.sleep(5)
        redis.stop()  # (what was sent while it went down counts in the phase before)
        enter("redis down", " (10 s; redis-server killed)")
        time.sleep(5)
        readyz["redis down"] = probe_readyz(w)
        time.sleep(5)
        enter("redis back", " (redis-server started again, empty)")
        redis.start()
        recovered("redis", time.monotonic())
        enter("postgres stopping", " (pg_ctl stop -m immediate: requests in flight meanwhile)")
        pg.stop("immediate")
        enter("postgres down", " (5 s)")
        time.sleep(0.2)
        readyz["postgres down"] = probe_readyz(w)  # (it answers after the pool's 5 s wait)
        time.sleep(max(0.0, 5 - (time.monotonic() - clock["t"])))
        enter("postgres back", " (pg_ctl start)")
        pg.start()
        recovered("postgres", time.monotonic())
        enter("node2 killed", " (5 s; SIGKILL)")
        w.cl.live[2] = False
        w.cl.nodes[2].kill9()
        HTTP.reset(w.cl.bases[2])
        time.sleep(5)
        enter("node2 restarted", " (buzzgate serve again)")
        t0 = time.monotonic()
        w.cl.nodes[2].start()
        w.cl.live[2] = True
        recovered("node2 restart", t0)
        enter("end")
    finally:
        load.stop()

    # Afterwards: every token that got a 200 and was not revoked is live; every revoked one is
    # refused on every node.
    with load.lock:
        minted = [t for t in load.minted if t not in load.revoked and t not in load.uncertain
                  and t not in load.revoking]
        revoked = list(load.revoked)
        uncertain = list(load.uncertain)
    # A revoke answered other than 200 (503 while a store was down): did it take effect anyway?
    # (Either is correct: the caller was told to retry.)
    unc = counts("refused" if w.introspect(0, t)[1] is False else "still active" for t in uncertain)
    log(f"   revokes not answered 200: {len(uncertain)}; their tokens now: {fmt_counts(unc)}")
    lost, accepted = [], []
    lock = threading.Lock()
    jobs = [(t, True, i % 3) for i, t in enumerate(minted)] + [(t, False, n) for t in revoked for n in range(3)]

    def verify(k):
        for i in range(k, len(jobs), 16):
            tok, want_active, node = jobs[i]
            s, active, _ = w.introspect(node, tok)
            if s != 200 or active is not want_active:
                with lock:
                    (lost if want_active else accepted).append((load.minted_node.get(tok), node, s, active))

    t0 = time.monotonic()
    run_threads(16, verify)
    # And in the database itself (a cache could answer for a row that never committed).
    stored = {r[0] for r in w.pg.sql(f"SELECT encode(hash, 'hex') FROM tokens WHERE client_id = '{w.app[0]}'")}
    with load.lock:
        all_minted = list(load.minted)
    missing = [t for t in all_minted if token_hash(t) not in stored]
    missing_info = [(load.minted_node.get(t),) + tuple(load.minted_when.get(t, ("seed", 0, 0))) for t in missing]
    log(f"   issued tokens (200) without a row in the tokens table: {len(missing)} of {len(all_minted)}"
        + (f"; first: {missing_info[:5]}" if missing else ""))
    pg_down_200 = [(load.minted_node.get(t),) + tuple(v) for t, v in load.minted_when.items() if v[0] == "postgres down"]
    if pg_down_200:
        log(f"   W1 answered 200 for requests sent while Postgres was down (node, phase, sent at s into it, took s): "
            f"{[(n, ph, round(a, 3), round(b, 3)) for n, ph, a, b in pg_down_200[:10]]}")
    log(f"   verified {len(minted)} issued tokens and {len(revoked)} revoked tokens x 3 nodes in "
        f"{time.monotonic() - t0:.1f} s: {len(lost)} not active, {len(accepted)} revoked but active")

    table = []
    for name in phases[:-1]:  # not "end" (the few requests sent while the load stopped)
        st = load.stats.get(name, {"requests": 0, "statuses": {}, "bad": [], "by_kind": {}})
        fivexx = sum(v for k, v in st["statuses"].items() if k[:1] == "5" and not k.startswith("503"))
        lat = {k: pct(v) for k, v in st.get("latency", {}).items()}
        row = {"phase": name, "requests": st["requests"], "statuses": st["statuses"], "by_kind": st["by_kind"],
               "latency_ms": lat, "seconds": round(phase_len.get(name, 0), 1),
               "5xx_not_503": fivexx, "bad": st["bad"][:10], "bad_count": len(st["bad"]),
               "transport_errors_live_nodes": st.get("transport_live", 0),
               "transport_examples": st.get("transport_examples", [])[:5],
               "revoked_accepted": st.get("revoked_accepted", 0), "live_refused": st.get("live_refused", 0)}
        table.append(row)
        log(f"   {name:16} {st['requests']:6} requests in {phase_len.get(name, 0):4.1f} s: "
            f"{fmt_counts(st['statuses'])}; p50/p99/max ms "
            + ", ".join(f"{k} {v['p50']}/{v['p99']}/{v['max']}" for k, v in lat.items()))
        for b in st["bad"][:5]:
            log(f"      bad: {b}")
        for b in st.get("transport_examples", [])[:3]:
            log(f"      transport error to a live node: {b}")
    res.data["e_faults"] = {"phases": table, "recovery_s": recovery, "issued_checked": len(minted),
                            "revokes_not_200": len(uncertain), "revokes_not_200_outcome": unc,
                            "revoked_checked": len(revoked), "lost": lost[:20], "revoked_accepted": accepted[:20]}
    for row in table:
        name = row["phase"]
        ok = row["5xx_not_503"] == 0 and row["bad_count"] == 0
        res.expect(f"e. {name}: 5xx other than 503, 503 without Retry-After, wrong answers",
                   f"{row['5xx_not_503']}, {row['bad_count'] - row['5xx_not_503']} "
                   f"({row['requests']} requests: {fmt_counts(row['statuses'])})", "0, 0", ok)
        # Only the node that was killed may drop connections (while it is down).
        live_transport = row["transport_errors_live_nodes"]
        res.expect(f"e. {name}: transport errors to live nodes", live_transport, "0",
                   live_transport == 0 or name == "node2 killed")
    redis_down = next((r for r in table if r["phase"] == "redis down"), None)
    base = next((r for r in table if r["phase"] == "baseline"), None)
    if redis_down and base and redis_down["seconds"] and base["seconds"]:
        rate = redis_down["requests"] / redis_down["seconds"]
        base_rate = base["requests"] / base["seconds"]
        lat = redis_down["latency_ms"].get("W1", {})
        res.info("e. redis down: throughput and W1 latency",
                 f"{rate:.0f} req/s (baseline {base_rate:.0f}), W1 p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms",
                 "SPEC 11 says only \"slower\"")
    res.data["e_faults"]["readyz"] = readyz
    if "redis down" in readyz:
        r = readyz["redis down"]
        res.expect("e. redis down: /readyz on each node (SPEC 11)",
                   "; ".join(f"{s} {st} in {t} ms" for s, st, _, t in r),
                   "200 degraded", all(s == 200 and st == "degraded" for s, st, _, _ in r))
    if "postgres down" in readyz:
        r = readyz["postgres down"]
        res.expect("e. postgres down: /readyz on each node (SPEC 11)",
                   "; ".join(f"{s} {st} Retry-After {ra} in {t} ms" for s, st, ra, t in r), "503 with Retry-After",
                   all(s == 503 and ra for s, st, ra, _ in r))
    if "postgres down" in readyz:
        res.info("e. postgres down: how long /readyz takes to say 503",
                 ", ".join(f"{t} ms" for *_, t in readyz["postgres down"]),
                 "orchestrators' probes often time out after 1 s")
    pg_down = next((r for r in table if r["phase"] == "postgres down"), None)
    if pg_down:
        lat = pg_down["latency_ms"].get("W1", {})
        res.info("e. postgres down: what W1 saw", f"{fmt_counts(pg_down['by_kind'].get('W1', {}))}; "
                 f"p50 {lat.get('p50')} ms, max {lat.get('max')} ms",
                 "503 with Retry-After, or 200 once Postgres is back (a request waits up to 5 s for a connection)")
    if redis_down:
        w1 = redis_down["by_kind"].get("W1", {})
        issued = w1.get("200", 0)
        res.expect("e. redis down: tokens still issued (SPEC 11)", f"{issued} of {sum(w1.values())} W1 answered 200",
                   "issuing goes on", issued > 0 and issued >= 0.9 * sum(w1.values()))
    for what, r in recovery.items():
        bound = RECOVERY_BOUND_S if what != "node2 restart" else 30.0
        res.expect(f"e. recovery after {what} (every node ready and issuing)", ms(r),
                   f"< {bound * 1000:.0f} ms" + (" (no node restarted)" if what != "node2 restart" else ""),
                   r is not None and r < bound)
    res.data["e_faults"]["issued_without_row"] = missing_info[:20]
    res.data["e_faults"]["w1_200_while_postgres_down"] = pg_down_200[:20]
    res.expect("e. tokens answered 200 with no row in Postgres afterwards (SQL)", f"{len(missing)} of {len(all_minted)}",
               "0", not missing)
    res.expect("e. committed tokens lost (issued with 200, not revoked, now inactive)",
               f"{len(lost)} of {len(minted)}", "0", not lost)
    res.expect("e. revoked tokens accepted afterwards (each on 3 nodes)", f"{len(accepted)} of {len(revoked) * 3}",
               "0", not accepted)


# --- main ----------------------------------------------------------------------------------


def skip(why):
    if REQUIRE:
        log(f"chaos: {why} (BUZZGATE_REQUIRE_SERVICES=1)")
        sys.exit(1)
    log(f"SKIP chaos: {why}")
    sys.exit(0)


def report(res, started, meta):
    lines = ["| test | seen | expected | result |", "|---|---|---|---|"]
    for r in res.rows:
        seen = str(r["seen"]).replace("|", "/")
        result = "info" if r["ok"] is None else "pass" if r["ok"] else "**FAIL**"
        lines.append(f"| {r['test']} | {seen} | {r['expected']} | {result} |")
    took = time.monotonic() - started
    head = (f"Three Buzzgate nodes on one Postgres and one Redis ({meta['cpu']}, {meta['nproc']} cores, "
            f"{meta['date']}, {took:.0f} s)")
    md = head + "\n\n" + "\n".join(lines) + "\n"
    if res.failures:
        md += "\nFailed:\n" + "".join(f"- {f}\n" for f in res.failures)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump({"machine": meta, "seconds": round(took, 1), "rows": res.rows, "failures": res.failures,
                   "measured": res.data}, f, indent=2, default=str)
    log("")
    log(md)
    log(f"summary: {os.path.join(OUT, 'summary.md')}, {os.path.join(OUT, 'summary.json')}")


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    if shutil.which("redis-server") is None:
        skip("redis-server is not installed (Debian package redis-server)")
    bindir = pg_bin_dir()
    if bindir is None:
        skip("no PostgreSQL server binaries (initdb, pg_ctl; Debian package postgresql)")
    if shutil.which("psql") is None and not os.path.exists(os.path.join(bindir, "psql")):
        skip("psql is not installed (Debian package postgresql-client)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        skip("running as root without runuser (Postgres will not run as root)")
    if not os.path.exists(BIN):
        log(f"chaos: no buzzgate binary at {BIN} (build it, or set BUZZGATE_BIN)")
        sys.exit(1)
    meta = {"nproc": os.cpu_count(), "kernel": os.uname().release, "binary": BIN,
            "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                         if ln.startswith("model name")), "?"),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    res = Results()
    tmp = tempfile.mkdtemp(prefix="buzzgate-chaos-")
    pg = redis = cl = None
    try:
        log(f"== services: Postgres ({bindir}) and Redis of our own; binary {BIN}")
        pg = Postgres(bindir)
        pg.init()
        pg.start()
        redis = Redis(tmp)
        redis.start()
        log(f"   postgres on {pg.port} ({pg.dir}), redis on {redis.port}")
        cl = Cluster(pg, redis, tmp)
        cl.start()
        log(f"   nodes: {', '.join(cl.bases)} (ready in "
            f"{', '.join(f'{n.ready_ms:.0f}' for n in cl.nodes)} ms)")
        w = World(cl, pg)
        for fn in (race_code, race_refresh, race_spend):
            fn(w, res)
        for fn in (d_revoke, d_rotate, d_delete, d_consent, d_cap):
            fn(w, res)
        faults(w, pg, redis, res)
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"chaos: interrupted ({type(e).__name__}); cleaning up")
        res.failures.append("interrupted")
        raise SystemExit(130)
    except Exception as e:  # noqa: BLE001 - reported, then the table, then exit 1
        import traceback
        traceback.print_exc()
        res.failures.append(f"harness error: {e}")
        if cl:
            for n in cl.nodes:
                log(f"--- {n.log_path} (tail)\n{n.log_tail(1500)}")
    finally:
        # A second Ctrl-C (or a SIGTERM) must not leave servers behind: cleanup is not interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if cl:
            cl.stop()
        if redis:
            redis.stop()
        if pg:
            pg.cleanup()
        for n in (cl.nodes if cl else []):
            if os.path.exists(n.log_path):
                os.makedirs(OUT, exist_ok=True)
                shutil.copy(n.log_path, os.path.join(OUT, os.path.basename(n.log_path)))
        shutil.rmtree(tmp, ignore_errors=True)
        report(res, started, meta)
    sys.exit(1 if res.failures else 0)


if __name__ == "__main__":
    main()
