#!/usr/bin/env python3
"""`cargo xtask bench` (issue 10, docs/benchmarks.md): Buzzgate side by side with its baselines.

In one invocation, on this machine:
  - pgbench (one token-like row per transaction: the durability ceiling of this Postgres),
    redis-benchmark GET, and the peer server (node-oidc-provider, ../shared/peers/oidc-provider)
    through the peer's own wrk harness (bench.sh: W1, W4, and W2 with its non-rotating token);
  - a release build of buzzgate, started here on Postgres + Redis and on SQLite (rate limiter
    on, limits raised), seeded over HTTP and the CLI, then
      W1  client_credentials                       (bench.sh, the peer's harness)
      W2  refresh rotation, each connection its own family      (dynamic.lua)
      W3  authorize (remembered consent) -> code -> token, PKCE (dynamic.lua)
      W4  introspection (bench.sh) and userinfo (dynamic.lua) with live tokens
      W5  Buzz spends against sliding caps, 16 users x 4 apps   (dynamic.lua)
    at 16 and 64 connections for a fixed duration.
It prints rps, p50, p99, errors and the server's RSS, the ratios ours/peer, ours/pgbench and
ours/redis, and whether the targets of issue 10 are met, and writes target/bench/summary.json.

Environment: BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNS ("16 64"),
BENCH_WORKLOADS ("W1 W2 W3 W4 W5": a subset runs only those; the targets of the others are
then reported missing),
BENCH_BACKENDS ("postgres sqlite"), BENCH_PEER (1; 0 skips the peer), BENCH_DATABASE_URL and
BENCH_REDIS_URL (the local services), BENCH_SKIP_BUILD (1: use the existing release binary),
BENCH_BINARY (another build to measure, e.g. a baseline), BENCH_SERVER_ENV (space-separated
KEY=VALUE settings for the server, e.g. "BUZZGATE_DATABASE_MAX_CONNECTIONS=10").
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bgharness import (OAUTH, RAISED_LIMITS, Node, basic, call, clean_env, code_flow, free_port,  # noqa: E402
                       log, opener, pkce, rss_kib, sign_in)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(ROOT, "tests", "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
OUT = os.path.join(TARGET, "bench")
PEER = os.path.abspath(os.path.join(ROOT, "..", "shared", "peers", "oidc-provider"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "3s")
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "16 64").split()]
THREADS = 2
BACKENDS = os.environ.get("BENCH_BACKENDS", "postgres sqlite").split()
WORKLOADS = set(os.environ.get("BENCH_WORKLOADS", "W1 W2 W3 W4 W5").split())
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
PASSWORD = "bench-password-0123456789"
REDIRECT = "http://127.0.0.1:9/callback"
USERS = 16
SPEND_APPS = 4
TIGHT_CAP = 200  # half the W5 consents: hit within the run, so the cap is exercised


def seconds(d):
    return float(d[:-1]) if d.endswith("s") else float(d)


# --- the server under test ---------------------------------------------------------------


class Buzzgate:
    def __init__(self, binary, backend):
        self.binary = binary
        self.backend = backend
        self.tmp = tempfile.mkdtemp(prefix="buzzgate-bench-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        tag = f"bench{os.getpid()}{int(time.time())}"
        env = clean_env({
            "BUZZGATE_SIGNING_KEY_FILE": os.path.join(self.tmp, "key.pem"),
            **RAISED_LIMITS,
            "RUST_LOG": "warn",
        })
        # Extra server settings to compare, e.g. BENCH_SERVER_ENV="BUZZGATE_DATABASE_MAX_CONNECTIONS=10".
        for kv in os.environ.get("BENCH_SERVER_ENV", "").split():
            k, _, v = kv.partition("=")
            env[k] = v
        if backend == "postgres":
            env["DATABASE_URL"] = PG_URL
            env["BUZZGATE_DATABASE_SCHEMA"] = tag
            env["REDIS_URL"] = REDIS_URL
            env["BUZZGATE_REDIS_PREFIX"] = "{" + tag + "}:"
            self.schema = tag
        else:
            env["DATABASE_URL"] = "sqlite://" + os.path.join(self.tmp, "bg.db")
            self.schema = None
        self.node = Node(binary, env, self.tmp, self.port)
        self.env = self.node.env
        self.proc = None

    def cli(self, *args, stdin=None):
        return self.node.cli(*args, stdin=stdin)

    def start(self):
        self.cli("migrate")
        self.node.start()
        self.proc = self.node.proc
        self.ready_ms = self.node.ready_ms
        self.idle_rss = rss_kib(self.proc.pid, "VmRSS")

    def settle(self):
        """Lets Postgres finish what the previous workload left (dirty pages, dead tuples, stale
        statistics) before the next is measured, so no workload pays for another's writes:
        a checkpoint and a VACUUM ANALYZE of the node's schema (docs/benchmarks.md)."""
        if not self.schema:
            return
        tables = subprocess.run(
            ["psql", PG_URL, "-At", "-c",
             f"SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = '{self.schema}'"],
            capture_output=True, text=True).stdout.split()
        if tables:
            subprocess.run(["psql", PG_URL, "-q", "-c", f"VACUUM (ANALYZE) {', '.join(tables)}"],
                           capture_output=True)
        subprocess.run(["psql", PG_URL, "-q", "-c", "CHECKPOINT"], capture_output=True)

    def log_tail(self):
        return self.node.log_tail()

    def stop(self):
        self.node.stop()
        if self.schema:
            subprocess.run(["psql", PG_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'],
                           capture_output=True)
            subprocess.run(["redis-cli", "-u", REDIS_URL, "--scan", "--pattern", "{" + self.schema + "}:*"],
                           capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Seeded:
    """Users, apps, sessions, remembered consents and live tokens, made as clients make them."""

    def __init__(self, bg):
        self.bg = bg
        self.users = [f"bench{i}" for i in range(USERS)]
        for u in self.users:
            bg.cli("user", "add", u, "--password-stdin", stdin=PASSWORD + "\n")
            bg.cli("buzz", "credit", u, "1000000000")
        app = json.loads(bg.cli("client", "add", "--owner", "bench0", "--name", "bench app",
                                "--redirect-uri", REDIRECT, "--grant", "client_credentials", "--json"))
        self.app = (app["clientId"], app["clientSecret"])
        rs = json.loads(bg.cli("client", "add", "--owner", "bench0", "--name", "bench resource server",
                               "--redirect-uri", REDIRECT, "--resource-server", "--json"))
        self.rs = (rs["clientId"], rs["clientSecret"])
        self.spend_apps = []
        for i in range(SPEND_APPS):
            a = json.loads(bg.cli("client", "add", "--owner", "bench0", "--name", f"spend app {i}",
                                  "--redirect-uri", REDIRECT, "--json"))
            self.spend_apps.append((a["clientId"], a["clientSecret"]))
        self.browsers = {u: self.sign_in(u) for u in self.users}
        # W3's session, and a remembered consent of bench0 for the app.
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in self.browsers["bench0"][1])
        self.flow("bench0", self.app, "UserRead BuzzRead", approve={"remember": "true"})
        # W5: every user consents to every spend app, half of them with a tight cap.
        self.spend_tokens = []
        self.caps = {}
        for i, u in enumerate(self.users):
            for j, a in enumerate(self.spend_apps):
                tight = (i + j) % 2 == 0
                limit = [{"type": "sliding", "limit": TIGHT_CAP, "window": "day", "unit": 1}] if tight \
                    else [{"type": "sliding", "limit": 1000000, "window": "day", "unit": 1}]
                t = self.flow(u, a, "AIServices", approve={"remember": "true", "buzz_limit": json.dumps(limit)})
                self.spend_tokens.append(t["access_token"])
                self.caps[(u, a[0])] = limit[0]["limit"]

    def sign_in(self, user):
        return sign_in(self.bg.base, user, PASSWORD)

    def flow(self, user, app, scope, approve=None):
        """authorize (consent page when asked) -> code -> token."""
        return code_flow(self.browsers[user][0], self.bg.base, app, scope, REDIRECT, approve)

    def token_file(self, name, tokens):
        path = os.path.join(self.bg.tmp, name)
        with open(path, "w") as f:
            f.write("\n".join(tokens) + "\n")
        return path

    def overruns(self):
        """Consents whose spend in the window exceeds their cap, as the users' own API says."""
        bad = []
        for u in self.users:
            op = self.browsers[u][0]
            s, _, body = call(op, self.bg.base + "/api/v1/oauth/consents")
            for c in json.loads(body):
                cap = self.caps.get((u, c["clientId"]))
                for b in c.get("budgets", []):
                    spent = b.get("spend", 0)
                    if cap is not None and spent > cap:
                        bad.append((u, c["clientId"], spent, cap))
        return bad


# --- load generation ---------------------------------------------------------------------


def parse_result(text):
    m = re.search(r"^RESULT (.*)$", text, re.M)
    if not m:
        raise RuntimeError("wrk printed no RESULT line:\n" + text[-2000:])
    out = {}
    for kv in m.group(1).split():
        k, v = kv.split("=", 1)
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    fb = re.search(r"^FIRST_BAD (.*)$", text, re.M)
    if fb:
        out["first_bad"] = fb.group(1)[:200]
    return out


def cpu_ticks(pid):
    """utime + stime of a process, and (busy, total) of the machine, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        proc = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        proc = 0
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:9]]
    idle = cpu[3] + cpu[4]
    return proc, sum(cpu) - idle, sum(cpu)


def wrk_dynamic(mode, url, conns, duration, env, server_pid):
    e = dict(os.environ)
    e.update(env)
    e.update({"BENCH_MODE": mode, "BENCH_THREADS": str(THREADS)})
    p0, b0, t0 = cpu_ticks(server_pid)
    w0 = time.monotonic()
    r = subprocess.run(["wrk", f"-t{THREADS}", f"-c{conns}", f"-d{duration}", "--timeout", "5s", "--latency",
                        "-s", os.path.join(HERE, "dynamic.lua"), url], env=e, capture_output=True, text=True)
    wall = time.monotonic() - w0
    p1, b1, t1 = cpu_ticks(server_pid)
    out = parse_result(r.stdout + r.stderr)
    hz = os.sysconf("SC_CLK_TCK")
    # As bench.sh reports them: 100 = one core for the server, 100 = every core for the machine.
    out["srv_cpu"] = round((p1 - p0) / hz / wall * 100)
    out["sys_busy"] = round((b1 - b0) / max(1, t1 - t0) * 100)
    return out


def peer_harness(base, client, secret, label, out_dir, server_pid, token_path, introspect_path,
                 workloads, refresh_cmd=None):
    """The peer's own bench.sh: W1 and W4 (and W2 given a refresh token command)."""
    env = dict(os.environ)
    env.update({"BASE_URL": base, "CLIENT_ID": client, "CLIENT_SECRET": secret, "LABEL": label,
                "OUT_DIR": out_dir, "SERVER_PID": str(server_pid), "TOKEN_PATH": token_path,
                "INTROSPECT_PATH": introspect_path, "CONNS": " ".join(map(str, CONNS)),
                "DURATION": DURATION, "WARMUP": WARMUP, "WORKLOADS": workloads})
    if refresh_cmd:
        env["REFRESH_TOKEN_CMD"] = refresh_cmd
    r = subprocess.run(["bash", os.path.join(PEER, "bench.sh")], env=env, capture_output=True, text=True)
    rows = {}
    tsv = os.path.join(out_dir, "results.tsv")
    if not os.path.exists(tsv):
        raise RuntimeError(f"bench.sh ({label}) failed:\n{r.stderr[-2000:]}")
    with open(tsv) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(head, line.rstrip("\n").split("\t")))
            rows[(row["workload"], int(row["conns"]))] = {
                "rps": float(row["rps"]), "p50_ms": float(row["p50_ms"]), "p99_ms": float(row["p99_ms"]),
                "errors": int(row["non200"]) + int(row["badbody"]) + int(row["sockerr"]),
                "srv_cpu": row.get("srv_cpu"), "sys_busy": row.get("sys_busy"),
            }
    return rows


def run_buzzgate(binary, backend):
    log(f"== buzzgate on {backend}")
    bg = Buzzgate(binary, backend)
    results = {}
    try:
        bg.start()
        log(f"   ready in {bg.ready_ms:.0f} ms, idle RSS {bg.idle_rss / 1024:.1f} MiB; seeding")
        seed = Seeded(bg)
        log(f"   seeded {USERS} users, {SPEND_APPS + 2} apps, {len(seed.spend_tokens)} consents")
        pid = bg.proc.pid
        wrk_out = os.path.join(OUT, backend, "wrk")
        shutil.rmtree(wrk_out, ignore_errors=True)
        # The peer's harness, one workload per call, so Postgres settles in between (below).
        for w in ("W1", "W4"):
            if w not in WORKLOADS:
                continue
            bg.settle()
            rows = peer_harness(bg.base, seed.app[0], seed.app[1], f"buzzgate-{backend}",
                                os.path.join(wrk_out, w), pid, f"{OAUTH}/token", f"{OAUTH}/introspect", w)
            for (w, c), r in rows.items():
                results[(w if w != "W4" else "W4i", c)] = r
        auth = basic(*seed.app)
        verifier, challenge = pkce()
        code_query = urllib.parse.urlencode({"response_type": "code", "client_id": seed.app[0],
                                             "redirect_uri": REDIRECT, "scope": "UserRead", "state": "s",
                                             "code_challenge": challenge, "code_challenge_method": "S256"})
        userinfo_tokens = seed.token_file("userinfo.txt", [
            seed.flow("bench0", seed.app, "UserRead")["access_token"] for _ in range(32)])
        spend_tokens = seed.token_file("spend.txt", seed.spend_tokens)
        for c in CONNS:
            if "W2" in WORKLOADS:
                bg.settle()
                # Fresh families for each run, two per connection.
                fams = [seed.flow("bench0", seed.app, "UserRead BuzzRead")["refresh_token"] for _ in range(2 * c)]
                results[("W2", c)] = wrk_dynamic("refresh", f"{bg.base}{OAUTH}/token", c, DURATION, {
                    "BENCH_PATH": f"{OAUTH}/token", "BENCH_AUTH": auth,
                    "BENCH_TOKENS": seed.token_file("refresh.txt", fams), "BENCH_LABEL": f"W2/c{c}"}, pid)
            if "W3" in WORKLOADS:
                bg.settle()
                results[("W3", c)] = wrk_dynamic("code", f"{bg.base}{OAUTH}/authorize", c, DURATION, {
                    "BENCH_PATH": f"{OAUTH}/authorize", "BENCH_PATH2": f"{OAUTH}/token", "BENCH_AUTH": auth,
                    "BENCH_COOKIE": seed.cookie, "BENCH_QUERY": code_query, "BENCH_VERIFIER": verifier,
                    "BENCH_REDIRECT": REDIRECT, "BENCH_LABEL": f"W3/c{c}"}, pid)
            if "W4" in WORKLOADS:
                bg.settle()
                results[("W4u", c)] = wrk_dynamic("bearer", f"{bg.base}{OAUTH}/userinfo", c, DURATION, {
                    "BENCH_PATH": f"{OAUTH}/userinfo", "BENCH_TOKENS": userinfo_tokens,
                    "BENCH_LABEL": f"W4u/c{c}"}, pid)
            if "W5" in WORKLOADS:
                bg.settle()
                results[("W5", c)] = wrk_dynamic("spend", f"{bg.base}/api/v1/buzz/spend", c, DURATION, {
                    "BENCH_PATH": "/api/v1/buzz/spend", "BENCH_AUTH": basic(*seed.rs),
                    "BENCH_TOKENS": spend_tokens, "BENCH_LABEL": f"W5/c{c}"}, pid)
        overruns = seed.overruns()
        peak = rss_kib(pid, "VmHWM")
        load_rss = rss_kib(pid, "VmRSS")
    except Exception:
        log(bg.log_tail())
        raise
    finally:
        bg.stop()
    for (w, c), r in results.items():
        if "requests" in r:  # a dynamic.lua row: normalise
            r["errors"] = int(r["non200"]) + int(r["badbody"]) + int(r["sockerr"])
            # W3's unit is a whole flow (two requests); the others' a request.
            r["units_per_s"] = r["ok"] / r["duration_s"] if w == "W3" else r["rps"]
    return {"results": results, "ready_ms": bg.ready_ms, "idle_rss_mib": bg.idle_rss / 1024,
            "peak_rss_mib": peak / 1024, "rss_after_load_mib": load_rss / 1024, "cap_overruns": overruns}


# --- baselines -----------------------------------------------------------------------------


def pgbench():
    log("== pgbench: one token-like row per transaction")
    setup = ("DROP TABLE IF EXISTS bench_ceiling_tokens; CREATE TABLE bench_ceiling_tokens ("
             "id uuid PRIMARY KEY, hash bytea NOT NULL UNIQUE, client_id text, user_id bigint NOT NULL, "
             "scope bigint NOT NULL, issued_at timestamptz NOT NULL, expires_at timestamptz)")
    subprocess.run(["psql", PG_URL, "-q", "-c", setup], check=True, capture_output=True)
    script = os.path.join(tempfile.mkdtemp(), "token.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO bench_ceiling_tokens VALUES (gen_random_uuid(), "
                "sha256(random()::text::bytea), 'bench-client', 1, 114689, now(), now() + interval '1 hour');\n")
    out = {}
    for c in CONNS:
        r = subprocess.run(["pgbench", "-n", "-M", "prepared", "-f", script, "-c", str(c), "-j", str(THREADS),
                            "-T", str(int(seconds(DURATION))), PG_URL], capture_output=True, text=True)
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", r.stdout)
        if not m:
            raise RuntimeError("pgbench: " + r.stdout[-500:] + r.stderr[-500:])
        out[c] = float(m.group(1))
        log(f"   c={c}: {out[c]:.0f} tps")
    subprocess.run(["psql", PG_URL, "-q", "-c", "DROP TABLE IF EXISTS bench_ceiling_tokens"], capture_output=True)
    return out


def redis_benchmark():
    log("== redis-benchmark GET")
    u = urllib.parse.urlsplit(REDIS_URL)
    out = {}
    for c in CONNS:
        r = subprocess.run(["redis-benchmark", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 6379),
                            "-t", "get", "-c", str(c), "-n", "200000", "--csv"], capture_output=True, text=True)
        m = re.search(r'"GET","([\d.]+)"', r.stdout)
        if not m:
            raise RuntimeError("redis-benchmark: " + r.stdout[-500:] + r.stderr[-500:])
        out[c] = float(m.group(1))
        log(f"   c={c}: {out[c]:.0f} rps")
    return out


def peer():
    log("== peer: node-oidc-provider through its own harness")
    if not os.path.isdir(os.path.join(PEER, "node_modules", "oidc-provider")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER, check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", NODE_ENV="production")
    proc = subprocess.Popen(["node", "server.mjs"], cwd=PEER, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        op = opener()
        # A cold first start (modules not yet in the page cache) can take more than 10 s.
        for _ in range(600):
            try:
                if call(op, base + "/.well-known/openid-configuration")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the peer exited with {proc.returncode} before it was ready")
            time.sleep(0.1)
        else:
            raise RuntimeError("the peer was not ready within 60 s")
        version = json.load(open(os.path.join(PEER, "node_modules", "oidc-provider", "package.json")))["version"]
        out_dir = os.path.join(OUT, "peer")
        shutil.rmtree(out_dir, ignore_errors=True)
        rows = peer_harness(base, "bench-client", "bench-secret-0123456789abcdef0123456789abcdef",
                            f"oidc-provider-{version}", out_dir, proc.pid, "/token", "/token/introspection",
                            "W1 W2 W4",
                            refresh_cmd=f"cd {PEER} && BASE_URL={base} REDIRECT_URI={base}/cb ./get_refresh_token.sh --token-only")
        return {"version": version, "rss_mib": rss_kib(proc.pid, "VmHWM") / 1024,
                "results": {(w if w != "W4" else "W4i", c): r for (w, c), r in rows.items()}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- report --------------------------------------------------------------------------------


def main():
    os.makedirs(OUT, exist_ok=True)
    packages = {"wrk": "wrk", "pgbench": "postgresql-client", "psql": "postgresql-client",
                "redis-benchmark": "redis-tools"}
    missing = sorted({pkg for tool, pkg in packages.items() if shutil.which(tool) is None})
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        log(f"== installing {' '.join(missing)} (Debian packages)")
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], capture_output=True)
    for tool, pkg in packages.items():
        if shutil.which(tool) is None:
            sys.exit(f"bench: `{tool}` is not installed (Debian package `{pkg}`)")
    binary = os.environ.get("BENCH_BINARY") or os.path.join(TARGET, "release", "buzzgate")
    if os.environ.get("BENCH_SKIP_BUILD") != "1" and not os.environ.get("BENCH_BINARY"):
        log("== building buzzgate (release)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "buzzgate", "--bin", "buzzgate"],
                       cwd=ROOT, check=True)
    summary = {"machine": {"nproc": os.cpu_count(), "kernel": os.uname().release,
                           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                        if l.startswith("model name")), "?"),
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
               "settings": {"duration": DURATION, "warmup": WARMUP, "conns": CONNS, "threads": THREADS}}
    pg = pgbench()
    rd = redis_benchmark()
    pr = peer() if os.environ.get("BENCH_PEER", "1") == "1" and os.path.isdir(PEER) else None
    ours = {b: run_buzzgate(binary, b) for b in BACKENDS}

    def unit(r):
        return r.get("units_per_s", r["rps"])

    lines = []
    table = []
    for b, o in ours.items():
        for (w, c), r in sorted(o["results"].items(), key=lambda kv: (kv[0][0], kv[0][1])):
            row = {"backend": b, "workload": w, "conns": c, "rps": round(r["rps"], 1),
                   "units_per_s": round(unit(r), 1), "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                   "errors": r["errors"], "srv_cpu": r.get("srv_cpu"), "sys_busy": r.get("sys_busy")}
            if w == "W5":
                row["spent"] = r.get("ok", 0)
                row["refused"] = r.get("refused", 0)
            if pr and (w, c) in pr["results"]:
                row["vs_peer"] = round(unit(r) / pr["results"][(w, c)]["rps"], 2)
            if c in pg and w in ("W1", "W2", "W3", "W5"):
                row["vs_pgbench"] = round(unit(r) / pg[c], 2)
            if c in rd and w in ("W4i", "W4u"):
                row["vs_redis"] = round(unit(r) / rd[c], 3)
            if "first_bad" in r:
                row["first_error"] = r["first_bad"]
            table.append(row)
    hdr = (f"{'backend':9} {'wl':4} {'c':>3} {'units/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>5}  "
           f"{'/peer':>6} {'/pgbench':>8} {'/redis':>7}  {'srv%':>5} {'busy%':>5}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for row in table:
        lines.append(f"{row['backend']:9} {row['workload']:4} {row['conns']:>3} {row['units_per_s']:>9.0f} "
                     f"{row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['errors']:>5}  "
                     f"{row.get('vs_peer', ''):>6} {row.get('vs_pgbench', ''):>8} {row.get('vs_redis', ''):>7}  "
                     f"{row.get('srv_cpu') or '':>5} {row.get('sys_busy') or '':>5}")
    if pr:
        for (w, c), r in sorted(pr["results"].items()):
            lines.append(f"{'peer':9} {w:4} {c:>3} {r['rps']:>9.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>5}")
    for c in CONNS:
        lines.append(f"{'pgbench':9} {'row':4} {c:>3} {pg[c]:>9.0f}")
        lines.append(f"{'redis':9} {'GET':4} {c:>3} {rd[c]:>9.0f}")
    for b, o in ours.items():
        lines.append(f"{b}: ready {o['ready_ms']:.0f} ms, RSS idle {o['idle_rss_mib']:.1f} MiB, "
                     f"peak {o['peak_rss_mib']:.1f} MiB; W5 cap overruns: {len(o['cap_overruns'])}")
    log("")
    log("\n".join(lines))

    # The targets of issue 10, at c=64.
    def get(b, w, key="units_per_s", c=64):
        for row in table:
            if row["backend"] == b and row["workload"] == w and row["conns"] == c:
                return row.get(key)
        return None

    targets = []

    def target(name, value, bound, ok):
        targets.append({"target": name, "value": value, "bound": bound, "met": bool(ok)})

    if "postgres" in ours:
        o = ours["postgres"]
        if pr:
            target("PG W1 / peer", get("postgres", "W1", "vs_peer"), ">= 1.0", (get("postgres", "W1", "vs_peer") or 0) >= 1.0)
            target("PG W4 introspection / peer", get("postgres", "W4i", "vs_peer"), ">= 3.0", (get("postgres", "W4i", "vs_peer") or 0) >= 3.0)
            target("PG W2 / peer", get("postgres", "W2", "vs_peer"), ">= 1.0", (get("postgres", "W2", "vs_peer") or 0) >= 1.0)
        target("PG W1 / pgbench", get("postgres", "W1", "vs_pgbench"), ">= 0.8", (get("postgres", "W1", "vs_pgbench") or 0) >= 0.8)
        target("PG W4 introspection p99 ms", get("postgres", "W4i", "p99_ms"), "< 5", (get("postgres", "W4i", "p99_ms") or 99) < 5)
        target("PG W3 / pgbench", get("postgres", "W3", "vs_pgbench"), ">= 0.25", (get("postgres", "W3", "vs_pgbench") or 0) >= 0.25)
        target("PG W5 / pgbench", get("postgres", "W5", "vs_pgbench"), ">= 0.3", (get("postgres", "W5", "vs_pgbench") or 0) >= 0.3)
        target("PG W5 cap overruns", len(o["cap_overruns"]), "= 0", not o["cap_overruns"])
        target("PG peak RSS MiB", round(o["peak_rss_mib"], 1), "< 100", o["peak_rss_mib"] < 100)
    if "sqlite" in ours:
        o = ours["sqlite"]
        if pr:
            target("SQLite W1 / peer", get("sqlite", "W1", "vs_peer"), ">= 0.8", (get("sqlite", "W1", "vs_peer") or 0) >= 0.8)
            target("SQLite W4 introspection / peer", get("sqlite", "W4i", "vs_peer"), ">= 3.0", (get("sqlite", "W4i", "vs_peer") or 0) >= 3.0)
        target("SQLite ready ms", round(o["ready_ms"]), "< 200", o["ready_ms"] < 200)
        target("SQLite idle RSS MiB", round(o["idle_rss_mib"], 1), "< 30", o["idle_rss_mib"] < 30)
        target("SQLite peak RSS MiB", round(o["peak_rss_mib"], 1), "< 100", o["peak_rss_mib"] < 100)
    errors = sum(row["errors"] for row in table)
    target("errors in every run", errors, "= 0", errors == 0)
    log("")
    for t in targets:
        log(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']} (target {t['bound']})")

    summary.update({
        "pgbench_tps": pg, "redis_get_rps": rd,
        "peer": None if pr is None else {"version": pr["version"], "peak_rss_mib": pr["rss_mib"],
                                         "runs": [{"workload": w, "conns": c, **r} for (w, c), r in sorted(pr["results"].items())]},
        "buzzgate": {b: {k: v for k, v in o.items() if k != "results"} for b, o in ours.items()},
        "runs": table, "targets": targets,
    })
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    log(f"\nsummary: {os.path.join(OUT, 'summary.json')}")


if __name__ == "__main__":
    main()
