"""The official Python MCP SDK (`mcp` from PyPI) against `buzzgate serve`'s MCP listener
(docs/mcp.md): lists the four tools with their hints, exchanges a real authorization code
through `civitai-oauth-exchange` with the server's bound client (the agent never holds the
secret), refreshes, reads userinfo, and sees a replayed code come back as a tool error.

Environment (tests/mcp/run.sh sets it): BG_URL, BG_MCP_URL, BG_USER, BG_PASSWORD,
BG_CLIENT_ID, BG_REDIRECT_URI.
"""

import asyncio
import base64
import hashlib
import html
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

BASE = os.environ["BG_URL"]
MCP_URL = os.environ["BG_MCP_URL"]


def fail(step, what):
    print(f"mcp check: {step}: {what}", file=sys.stderr)
    sys.exit(1)


def ok(step, what):
    print(f"ok   {step}: {what}")


def hidden(form_html):
    return {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form_html)
    }


def authorization_code():
    """Signs in and approves the consent page as a browser would; the code and verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    b = requests.Session()
    page = b.get(f"{BASE}/login", timeout=10)
    fields = hidden(page.text)
    r = b.post(
        f"{BASE}/login",
        data={**fields, "username": os.environ["BG_USER"], "password": os.environ["BG_PASSWORD"]},
        allow_redirects=False,
        timeout=10,
    )
    if r.status_code != 303:
        fail("sign in", f"expected 303, got {r.status_code}")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": os.environ["BG_CLIENT_ID"],
            "redirect_uri": os.environ["BG_REDIRECT_URI"],
            "scope": "AIServices",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    r = b.get(f"{BASE}/api/auth/oauth/authorize?{query}", allow_redirects=False, timeout=10)
    if r.status_code == 200:
        form = next(
            (f for f in re.finditer(r'<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>', r.text, re.S)
             if 'name="approved"' in f.group(2)),
            None,
        )
        if not form:
            fail("consent", "no form with an Approve button")
        data = {**hidden(form.group(2)), "approved": "true", "remember": "true"}
        r = b.post(urljoin(BASE + "/", html.unescape(form.group(1))), data=data, allow_redirects=False, timeout=10)
    loc = r.headers.get("Location", "")
    code = parse_qs(urlsplit(loc).query).get("code", [None])[0]
    if not code:
        fail("consent", f"no code in the redirect {loc!r} ({r.status_code})")
    return code, verifier


def a(obj, camel):
    """An attribute under the SDK's spelling: snake_case (mcp 2.x) or camelCase (1.x)."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


def structured(result):
    if a(result, "structuredContent") is not None:
        return a(result, "structuredContent")
    import json

    return json.loads(result.content[0].text)


async def main():
    async with streamable_http_client(MCP_URL) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as s:
            await s.initialize()
            ok("initialize", f"protocol {getattr(s, 'protocol_version', '?')}")
            tools = {t.name: t for t in (await s.list_tools()).tools}
            want = {"civitai-oauth-exchange", "oauth-introspect", "oauth-userinfo", "oauth-revoke"}
            if not want <= set(tools):
                fail("tools/list", f"expected {sorted(want)}, got {sorted(tools)}")
            ex = tools["civitai-oauth-exchange"].annotations
            if (a(ex, 'readOnlyHint'), a(ex, 'destructiveHint'), a(ex, 'idempotentHint')) != (False, False, False):
                fail("tools/list", f"civitai-oauth-exchange hints {ex}")
            for name in ("oauth-introspect", "oauth-userinfo"):
                if a(tools[name].annotations, 'readOnlyHint') is not True:
                    fail("tools/list", f"{name} should be read-only")
            if a(tools['oauth-revoke'].annotations, 'destructiveHint') is not True:
                fail("tools/list", "oauth-revoke should be destructive")
            if "body" not in a(tools['civitai-oauth-exchange'], 'inputSchema').get('properties', {}):
                fail("tools/list", "civitai-oauth-exchange takes `body`")
            ok("tools/list", f"{sorted(tools)} with their hints")

            code, verifier = authorization_code()
            body = {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": os.environ["BG_REDIRECT_URI"],
            }
            r = await s.call_tool("civitai-oauth-exchange", {"body": body})
            if a(r, 'isError'):
                fail("exchange", f"tool error {r.content}")
            tokens = structured(r)
            if "access_token" not in tokens or "refresh_token" not in tokens:
                fail("exchange", f"no tokens in {tokens}")
            ok("exchange", "a real code for tokens, with the bound client")

            r = await s.call_tool(
                "civitai-oauth-exchange",
                {"body": {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}},
            )
            if a(r, 'isError'):
                fail("refresh", f"tool error {r.content}")
            refreshed = structured(r)
            ok("refresh", "new access and refresh tokens")

            r = await s.call_tool("oauth-userinfo", {"access_token": refreshed["access_token"]})
            who = structured(r)
            if a(r, 'isError') or who.get("preferred_username") != os.environ["BG_USER"]:
                fail("userinfo", f"{who}")
            ok("userinfo", f"preferred_username {who['preferred_username']}")

            r = await s.call_tool("civitai-oauth-exchange", {"body": body})
            if not a(r, 'isError') or structured(r).get("error") != "invalid_grant":
                fail("replayed code", f"expected a tool error invalid_grant, got {r}")
            ok("replayed code", "a tool error with invalid_grant")
    print("mcp check: all steps passed")


asyncio.run(main())
