"""Shared by the Python harnesses (tests/bench/bench.py, tests/chaos/chaos.py): start and stop a
`buzzgate` process with its environment, plain HTTP helpers over urllib, PKCE, signing in through
the login form, and the authorization-code flow through the consent page. Standard library only.
"""

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

OAUTH = "/api/auth/oauth"

# The limiter stays on, with limits no harness reaches.
RAISED_LIMITS = {
    "BUZZGATE_RATE_LIMIT_TOKEN": "1000000000",
    "BUZZGATE_RATE_LIMIT_AUTHORIZE": "1000000000",
    "BUZZGATE_RATE_LIMIT_REVOKE": "1000000000",
    "BUZZGATE_RATE_LIMIT_CLIENT_AUTH": "1000000000",
    "BUZZGATE_RATE_LIMIT_LOGIN_ACCOUNT": "1000000000",
    "BUZZGATE_RATE_LIMIT_LOGIN_IP": "1000000000",
}


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- HTTP helpers -------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def opener(jar=None):
    handlers = [NoRedirect()]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def call(op, url, data=None, headers=None, method=None, json_body=None, timeout=30):
    """(status, headers, body text); an HTTP error status is a result, not an exception."""
    body = None
    headers = dict(headers or {})
    if data is not None:
        body = urllib.parse.urlencode(data).encode()
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with op.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def hidden_inputs(html):
    out = {}
    for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', html):
        out[m.group(1)] = m.group(2).replace("&quot;", '"').replace("&amp;", "&")
    return out


def basic(client_id, secret):
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


# --- a buzzgate process --------------------------------------------------------------------


def clean_env(settings):
    """This process's environment without any Buzzgate setting, plus `settings`."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("BUZZGATE_") or k in ("DATABASE_URL", "REDIS_URL"):
            del env[k]
    env.update(settings)
    return env


class Node:
    """One `buzzgate serve` on `port` with `env` (its own log file in `tmp`)."""

    def __init__(self, binary, env, tmp, port, name="server"):
        self.binary = binary
        self.env = dict(env, BUZZGATE_LISTEN=f"127.0.0.1:{port}")
        self.tmp = tmp
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.proc = None
        self.ready_ms = None

    def cli(self, *args, stdin=None):
        r = subprocess.run([self.binary, *args], env=self.env, input=stdin, capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"buzzgate {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, timeout=30):
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "a"), start_new_session=True)
        op = opener()
        while True:
            try:
                if call(op, self.base + "/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"buzzgate on {self.port} did not become ready: " + self.log_tail())
            time.sleep(0.005)
        self.ready_ms = (time.monotonic() - t0) * 1000

    def log_tail(self, n=2000):
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


# --- people and apps, as clients make them --------------------------------------------------


def sign_in(base, user, password):
    """A browser signed in through the login form: (opener, cookie jar)."""
    jar = http.cookiejar.CookieJar()
    op = opener(jar)
    s, _, page = call(op, base + "/login?returnUrl=%2F")
    fields = hidden_inputs(page)
    s, _, _ = call(op, base + "/login", {"username": user, "password": password,
                                        "csrf_token": fields["csrf_token"], "returnUrl": "/"})
    if s != 303:
        raise RuntimeError(f"sign-in of {user}: {s}")
    return op, jar


def authorize(op, base, app, scope, redirect, approve=None):
    """authorize (the consent page when asked, approved with `approve`'s fields) -> (code, verifier)."""
    verifier, challenge = pkce()
    q = urllib.parse.urlencode({"response_type": "code", "client_id": app[0], "redirect_uri": redirect,
                                "scope": scope, "state": "s", "code_challenge": challenge,
                                "code_challenge_method": "S256"})
    s, h, body = call(op, f"{base}{OAUTH}/authorize?{q}")
    if s == 200:
        form = hidden_inputs(body)
        form.update({"approved": "true", **(approve or {})})
        s, h, body = call(op, f"{base}{OAUTH}/authorize", form)
    loc = h.get("Location") or h.get("location") or ""
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query).get("code", [None])[0]
    if code is None:
        raise RuntimeError(f"no code: {s} {loc} {body[:200]}")
    return code, verifier


def redeem(base, app, code, verifier, redirect, op=None):
    """The token request for a code: (status, headers, body)."""
    return call(op or opener(), f"{base}{OAUTH}/token",
                {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                 "redirect_uri": redirect}, {"Authorization": basic(*app)})


def code_flow(op, base, app, scope, redirect, approve=None):
    """authorize (consent page when asked) -> code -> token response (a dict)."""
    code, verifier = authorize(op, base, app, scope, redirect, approve)
    s, _, body = redeem(base, app, code, verifier, redirect)
    if s != 200:
        raise RuntimeError(f"code exchange: {s} {body[:200]}")
    return json.loads(body)
