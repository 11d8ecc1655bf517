#!/usr/bin/env python3
"""Interoperability check: a full authorization-code + PKCE flow against Buzzgate,
driven by the independent client library authlib (the browser is a plain
requests.Session that follows no redirects).

Inputs (environment): BG_URL, BG_USER, BG_PASSWORD, BG_CLIENT_ID,
BG_CLIENT_SECRET, BG_REDIRECT_URI. Only the discovery path is hard-coded.

Prints one line per step; exits non-zero on the first failure with
"authlib interop: <step>: <what>".
"""

import base64
import html
import json
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

SCOPE = "114689"
TIMEOUT = 15


def fail(step, what):
    sys.exit(f"authlib interop: {step}: {what}")


def ok(step, detail=""):
    print(f"ok   {step}" + (f": {detail}" if detail else ""), flush=True)


def env(name):
    v = os.environ.get(name)
    if not v:
        fail("config", f"environment variable {name} is not set")
    return v


def describe(res):
    body = res.text
    if len(body) > 600:
        body = body[:600] + "…"
    return f"{res.request.method} {res.request.url} -> {res.status_code} {dict(res.headers)} {body!r}"


def expect_status(step, res, status):
    if res.status_code != status:
        fail(step, f"expected HTTP {status}, got {describe(res)}")


def location(step, res, base):
    loc = res.headers.get("Location")
    if not loc:
        fail(step, f"no Location header: {describe(res)}")
    return urljoin(base + "/", loc)


def b64url_json(part):
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part.encode()))


def main():
    base = env("BG_URL").rstrip("/")
    user = env("BG_USER")
    password = env("BG_PASSWORD")
    client_id = env("BG_CLIENT_ID")
    client_secret = env("BG_CLIENT_SECRET")
    redirect_uri = env("BG_REDIRECT_URI")

    # 1. Discovery.
    step = "discovery"
    try:
        res = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    except requests.RequestException as e:
        fail(step, f"request failed: {e}")
    expect_status(step, res, 200)
    try:
        meta = res.json()
    except ValueError:
        fail(step, f"not JSON: {describe(res)}")
    for key in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
    ):
        if not isinstance(meta.get(key), str) or not meta[key]:
            fail(step, f"metadata lacks `{key}`: {meta}")
    if "S256" not in meta.get("code_challenge_methods_supported", []):
        fail(step, f"S256 not in code_challenge_methods_supported: {meta}")
    issuer = meta["issuer"]
    ok(step, f"issuer {issuer}")

    session = OAuth2Session(
        client_id,
        client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    code_verifier = generate_token(48)
    nonce = secrets.token_urlsafe(16)
    auth_url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )
    ok("authorization url", auth_url)

    browser = requests.Session()
    browser.headers["User-Agent"] = "buzzgate-authlib-interop"

    def get(url):
        return browser.get(url, allow_redirects=False, timeout=TIMEOUT)

    def post(url, data):
        return browser.post(url, data=data, allow_redirects=False, timeout=TIMEOUT)

    # 2. Not signed in: the authorize endpoint sends the browser to /login.
    step = "authorize (signed out)"
    res = get(auth_url)
    expect_status(step, res, 303)
    login_url = location(step, res, base)
    parts = urlsplit(login_url)
    if parts.path != "/login" or "returnUrl" not in parse_qs(parts.query):
        fail(step, f"expected a redirect to /login?returnUrl=…, got {login_url}")
    ok(step, f"303 -> {res.headers['Location']}")

    # 3. The login page: hidden csrf_token and returnUrl.
    step = "login page"
    res = get(login_url)
    expect_status(step, res, 200)
    fields = {}
    for name in ("csrf_token", "returnUrl"):
        m = re.search(r'name="' + name + r'" value="([^"]*)"', res.text)
        if not m:
            fail(step, f"no hidden `{name}` input in {describe(res)}")
        fields[name] = html.unescape(m.group(1))
    if not fields["csrf_token"]:
        fail(step, "empty csrf_token")
    ok(step, f"returnUrl {fields['returnUrl']}")

    # 4. Sign in.
    step = "login"
    res = post(urljoin(base + "/", "/login"), {"username": user, "password": password, **fields})
    expect_status(step, res, 303)
    if not browser.cookies.get("bg_session"):
        fail(step, f"no bg_session cookie set: {describe(res)}")
    ok(step, f"303 -> {res.headers.get('Location')} with bg_session")

    # 5. Back to authorize: the consent page.
    step = "consent page"
    res = get(urljoin(base + "/", fields["returnUrl"]))
    expect_status(step, res, 200)
    if "text/html" not in res.headers.get("Content-Type", ""):
        fail(step, f"not HTML: {describe(res)}")
    # The consent form is the one with the Approve button (the page header has Sign out).
    form = next(
        (
            f
            for f in re.finditer(r'<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>', res.text, re.S)
            if 'name="approved"' in f.group(2)
        ),
        None,
    )
    if not form:
        fail(step, f"no form with an Approve button in {describe(res)}")
    action = urljoin(base + "/", html.unescape(form.group(1)))
    consent = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(
            r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form.group(2)
        )
    }
    if not consent:
        fail(step, f"no hidden inputs in the consent form: {describe(res)}")
    # A browser also submits the selected option of any <select>, the value of number
    # fields and ticked checkboxes (the Buzz cap controls).
    for name, value in re.findall(
        r'<input type="number"[^>]*\bname="([^"]*)" value="([^"]*)"', form.group(2)
    ):
        consent[html.unescape(name)] = html.unescape(value)
    for name, value in re.findall(
        r'<input type="checkbox"[^>]*\bname="([^"]*)" value="([^"]*)" checked', form.group(2)
    ):
        consent[html.unescape(name)] = html.unescape(value)
    for sel_name, options in re.findall(
        r'<select[^>]*\bname="([^"]*)">(.*?)</select>', form.group(2), re.S
    ):
        chosen = re.search(r'<option value="([^"]*)" selected>', options) or re.search(
            r'<option value="([^"]*)"', options
        )
        if chosen:
            consent[html.unescape(sel_name)] = html.unescape(chosen.group(1))
    for key, want in (("state", state), ("nonce", nonce), ("client_id", client_id)):
        if consent.get(key) != want:
            fail(step, f"hidden `{key}` is {consent.get(key)!r}, expected {want!r}")
    consent["approved"] = "true"
    consent["remember"] = "true"
    ok(step, f"form to {action} with {sorted(consent)}")

    # 6. Approve: 303 back to the client with code, state and iss.
    step = "approve"
    res = post(action, consent)
    expect_status(step, res, 303)
    callback = res.headers.get("Location", "")
    if not callback.startswith(redirect_uri):
        fail(step, f"Location {callback!r} does not start with {redirect_uri!r}")
    q = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    for key in ("code", "state", "iss"):
        if not q.get(key):
            fail(step, f"callback lacks `{key}`: {callback}")
    if q["iss"] != issuer:
        fail(step, f"iss {q['iss']!r} differs from the discovery issuer {issuer!r}")
    if q["state"] != state:
        fail(step, f"state {q['state']!r} differs from authlib's {state!r}")
    ok(step, "303 to the redirect URI with code, state and iss")

    # 7. Code exchange (authlib checks state again, sends Basic auth and the verifier).
    step = "token (authorization_code)"
    try:
        token = session.fetch_token(
            meta["token_endpoint"],
            authorization_response=callback,
            code_verifier=code_verifier,
            state=state,
        )
    except Exception as e:  # authlib raises OAuthError and friends
        fail(step, f"{type(e).__name__}: {e}")
    if str(token.get("token_type", "")).lower() != "bearer":
        fail(step, f"token_type is {token.get('token_type')!r}: {dict(token)}")
    if not token.get("access_token"):
        fail(step, f"no access_token: {dict(token)}")
    if not token.get("refresh_token"):
        fail(step, f"no refresh_token: {dict(token)}")
    if token.get("scope") != SCOPE:
        fail(step, f"scope is {token.get('scope')!r}, expected {SCOPE!r}")
    id_token = token.get("id_token")
    if not id_token:
        fail(step, f"no id_token although the request carried a nonce: {dict(token)}")
    segs = id_token.split(".")
    if len(segs) != 3:
        fail(step, f"id_token has {len(segs)} dot-separated parts, expected 3")
    try:
        claims = b64url_json(segs[1])
    except Exception as e:
        fail(step, f"id_token payload is not base64url JSON: {e}")
    if claims.get("nonce") != nonce:
        fail(step, f"id_token nonce is {claims.get('nonce')!r}, expected {nonce!r}")
    ok(step, f"Bearer, scope {SCOPE}, refresh_token, id_token with the nonce")

    # 8. Userinfo with the bearer.
    step = "userinfo"
    res = session.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    expect_status(step, res, 200)
    try:
        info = res.json()
    except ValueError:
        fail(step, f"not JSON: {describe(res)}")
    if info.get("preferred_username") != user:
        fail(step, f"preferred_username is {info.get('preferred_username')!r}, expected {user!r}")
    ok(step, f"preferred_username {user}")

    # 9. Refresh: a new access token and a rotated refresh token.
    step = "token (refresh_token)"
    old_access, old_refresh = token["access_token"], token["refresh_token"]
    try:
        new = session.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    except Exception as e:
        fail(step, f"{type(e).__name__}: {e}")
    if not new.get("access_token") or new["access_token"] == old_access:
        fail(step, "no new access token")
    if not new.get("refresh_token") or new["refresh_token"] == old_refresh:
        fail(step, "the refresh token was not rotated")
    ok(step, "new access and refresh tokens")

    # 10. Revoke the new access token, then it must no longer work.
    step = "revoke"
    res = session.revoke_token(
        meta["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token"
    )
    expect_status(step, res, 200)
    ok(step, "200")

    step = "userinfo after revoke"
    res = requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {new['access_token']}"},
        timeout=TIMEOUT,
    )
    expect_status(step, res, 401)
    challenge = res.headers.get("WWW-Authenticate", "")
    if "invalid_token" not in challenge:
        fail(step, f"WWW-Authenticate {challenge!r} does not name invalid_token")
    ok(step, f"401, WWW-Authenticate: {challenge}")

    print("authlib interop: all steps passed", flush=True)


if __name__ == "__main__":
    main()
