"""The official Python MCP SDK as an MCP client that knows only a URL (issue 13, docs/mcp.md):
its OAuth client discovers the account MCP server's protected-resource metadata and
Buzzgate's authorization-server metadata, registers itself (RFC 7591), runs the code flow
with PKCE and `resource` (the browser half, sign-in and consent, done here through
Buzzgate's own pages), and calls `whoami` and `buzz-balance` with the token.

With `cimd` as its argument it does the same as a client whose ID is a client ID metadata
document (SPEC 14) instead of registering: the document is served here on loopback, the
server runs with BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK=true, and the SDK's own https-only check
of `client_metadata_url` is relaxed for that one loopback URL (the SDK validates the URL
before it ever reaches a server; what is under test is the server's side of CIMD).

Environment (tests/mcp/run.sh): BG_URL, BG_ACCOUNT_URL, BG_USER, BG_PASSWORD.
"""

import asyncio
import html
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

BASE = os.environ["BG_URL"]
ACCOUNT = os.environ["BG_ACCOUNT_URL"]
REDIRECT = "http://127.0.0.1:7777/callback"
CIMD = sys.argv[1:] == ["cimd"]


def fail(step, what):
    print(f"mcp oauth check: {step}: {what}", file=sys.stderr)
    sys.exit(1)


def ok(step, what):
    print(f"ok   {step}: {what}")


def a(obj, camel):
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


class Memory:
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


seen = {}


async def redirect_handler(url: str) -> None:
    seen["authorize"] = url


def hidden_fields(form_html):
    return [
        (html.unescape(n), html.unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form_html)
    ]


async def callback_handler() -> AuthorizationCodeResult:
    """The person's browser: sign in, approve the consent page, read the redirect."""
    url = seen.get("authorize") or fail("authorize", "the SDK never opened an authorization URL")
    q = parse_qs(urlsplit(url).query)
    if q.get("resource") != [ACCOUNT]:
        fail("authorize", f"the SDK should send resource={ACCOUNT}, sent {q.get('resource')}")
    if q.get("code_challenge_method") != ["S256"]:
        fail("authorize", "PKCE S256 expected")
    ok("authorize", f"client {q['client_id'][0]}, resource {q['resource'][0]}, scope {q.get('scope')}")
    b = requests.Session()
    page = b.get(f"{BASE}/login", timeout=10)
    fields = dict(hidden_fields(page.text))
    r = b.post(
        f"{BASE}/login",
        data={**fields, "username": os.environ["BG_USER"], "password": os.environ["BG_PASSWORD"]},
        allow_redirects=False,
        timeout=10,
    )
    if r.status_code != 303:
        fail("sign in", f"{r.status_code}")
    r = b.get(url, allow_redirects=False, timeout=10)
    if r.status_code == 200:
        said = "describes itself in a document at" if CIMD else "registered itself"
        if said not in r.text:
            fail("consent", f"the page should say the app {said}")
        if CIMD and 'data-warning="loopback"' not in r.text:
            fail("consent", "every redirect URI is loopback: the page should warn")
        form = next(
            (f for f in re.finditer(r'<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>', r.text, re.S)
             if 'name="approved"' in f.group(2)),
            None,
        ) or fail("consent", "no form with an Approve button")
        data = hidden_fields(form.group(2)) + [("approved", "true"), ("remember", "true")]
        r = b.post(urljoin(BASE + "/", html.unescape(form.group(1))), data=data, allow_redirects=False, timeout=10)
        ok("consent", "approved on Buzzgate's consent page")
    loc = r.headers.get("Location", "")
    back = parse_qs(urlsplit(loc).query)
    if "code" not in back:
        fail("callback", f"no code in {loc!r}")
    return AuthorizationCodeResult(code=back["code"][0], state=back.get("state", [None])[0], iss=back.get("iss", [None])[0])


def serve_document():
    """Serves this client's metadata document on a loopback port; its URL."""
    doc = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/oauth/client.json":
                self.send_error(404)
                return
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/oauth/client.json"
    doc.update(
        client_id=url,
        client_name="python-mcp-cimd-check",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url


async def main():
    storage = Memory()
    extra = {}
    if CIMD:
        import mcp.client.auth.oauth2 as oauth2

        url = serve_document()
        https_only = oauth2.is_valid_client_metadata_url
        oauth2.is_valid_client_metadata_url = lambda u: u == url or https_only(u)
        extra["client_metadata_url"] = url
    provider = OAuthClientProvider(
        server_url=ACCOUNT,
        client_metadata=OAuthClientMetadata(
            client_name="python-mcp-check",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        **extra,
    )
    async with create_mcp_http_client(auth=provider) as http_client:
        async with streamable_http_client(ACCOUNT, http_client=http_client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as s:
                await s.initialize()
                if storage.client is None:
                    fail("register", "the SDK has no client")
                if CIMD:
                    if storage.client.client_id != extra["client_metadata_url"]:
                        fail("cimd", f"the SDK should use its document URL, used {storage.client.client_id}")
                    ok("cimd", f"client_id {storage.client.client_id} (metadata document, no registration)")
                else:
                    ok("register", f"client_id {storage.client.client_id} (dynamic registration)")
                tools = {t.name for t in (await s.list_tools()).tools}
                if not {"whoami", "buzz-balance"} <= tools:
                    fail("tools/list", f"{sorted(tools)}")
                ok("tools/list", f"{sorted(tools)}")
                r = await s.call_tool("whoami", {})
                who = a(r, "structuredContent") or {}
                if a(r, "isError") or who.get("username") != os.environ["BG_USER"]:
                    fail("whoami", f"{r}")
                ok("whoami", f"{who}")
                r = await s.call_tool("buzz-balance", {})
                bal = a(r, "structuredContent") or {}
                if a(r, "isError") or "balances" not in bal:
                    fail("buzz-balance", f"{r}")
                ok("buzz-balance", f"{bal}")
    # The token the SDK holds is for this server and no other: introspection says so.
    token = storage.tokens.access_token
    me = requests.get(f"{BASE}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    if me.get("aud") != ACCOUNT:
        fail("audience", f"/api/v1/me aud is {me.get('aud')!r}, expected {ACCOUNT}")
    ok("audience", f"aud {me['aud']}")
    print(f"mcp oauth check{' (cimd)' if CIMD else ''}: all steps passed")


asyncio.run(main())
