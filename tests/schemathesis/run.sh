#!/usr/bin/env bash
# Schemathesis against the server (issue 14): serves buzzgate over a throwaway SQLite database
# (tests/lib/serve.sh: a user and a confidential client), fetches GET /openapi.json and fuzzes
# every operation with it: no 5xx, and every answer conforms to the document.
# The client's Basic credentials go with every request so client-authenticated operations get
# past 401. ST_MAX_EXAMPLES (default 10) bounds the run. Exit code = schemathesis's.
set -euo pipefail
# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

SCHEMATHESIS_VERSION=4.32.5
if ! command -v schemathesis >/dev/null 2>&1 \
    || [[ $(schemathesis --version 2>/dev/null) != *"$SCHEMATHESIS_VERSION"* ]]; then
    python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

bg_start "Schemathesis check" --grant client_credentials

BASIC=$(printf '%s:%s' "$BG_CLIENT_ID" "$BG_CLIENT_SECRET" | base64 -w0)
echo "== schemathesis $SCHEMATHESIS_VERSION against $BG_URL/openapi.json"
schemathesis run "$BG_URL/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${ST_MAX_EXAMPLES:-10}" \
    --header "Authorization: Basic $BASIC" \
    --request-timeout 10 \
    --no-color
