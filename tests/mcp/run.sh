#!/usr/bin/env bash
# The official Python MCP SDK against `buzzgate serve` with BUZZGATE_MCP_LISTEN (docs/mcp.md):
# tests/mcp/mcp_client.py; and its OAuth client against the account MCP server
# (tests/mcp/oauth_client.py). Needs Python 3.10+ and PyPI (`mcp`, `requests`); without them it
# prints a SKIP line and passes, unless BUZZGATE_REQUIRE_SERVICES=1 (CI), where that fails.
set -euo pipefail

if ! python3 -c 'import mcp.client.streamable_http, requests' 2>/dev/null; then
    echo "== installing the mcp SDK"
    python3 -m pip install --quiet --disable-pip-version-check mcp requests >/dev/null 2>&1 || true
fi
if ! python3 -c 'import mcp.client.streamable_http, requests' 2>/dev/null; then
    if [[ ${BUZZGATE_REQUIRE_SERVICES:-} == 1 ]]; then
        echo "mcp check: the Python mcp SDK could not be installed (BUZZGATE_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "SKIP mcp check: the Python mcp SDK is not installed"
    exit 0
fi

# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

MCP_PORT=$((19080 + RANDOM % 1000))
export BUZZGATE_MCP_LISTEN="127.0.0.1:$MCP_PORT"
# Client ID metadata documents served on loopback by oauth_client.py cimd (development switch).
export BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK=true
# The capability's bound client is the app bg_start registers.
export BG_BIND_CLIENT=1
bg_start "MCP check"
export BG_MCP_URL="http://127.0.0.1:$MCP_PORT/mcp"
echo "== mcp $(python3 -c 'import importlib.metadata as m; print(m.version("mcp"))') against $BG_MCP_URL"
python3 tests/mcp/mcp_client.py

# The same SDK's OAuth client against the account MCP server, knowing only its URL:
# discovery, dynamic registration, the code flow with resource, both tools.
export BG_ACCOUNT_URL="http://127.0.0.1:$MCP_PORT/mcp/account"
python3 tests/mcp/oauth_client.py
# The same, as a client whose ID is its metadata document (CIMD) instead of registering.
python3 tests/mcp/oauth_client.py cimd
