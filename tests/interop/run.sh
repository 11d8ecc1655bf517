#!/usr/bin/env bash
# Interop check with authlib: builds buzzgate, serves it over a throwaway SQLite database,
# registers a user and a confidential client, then runs tests/interop/authlib_flow.py.
# Exit code = the script's.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

echo "== building buzzgate"
cargo build -q -p buzzgate --bin buzzgate
BIN="$TARGET_DIR/debug/buzzgate"
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/buzzgate-interop.XXXXXX")
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f $TMP/server.log ]]; then
        echo "== server log (tail)" >&2
        tail -n 40 "$TMP/server.log" >&2 || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT

PORT=$((18080 + RANDOM % 1000))
export DATABASE_URL="sqlite://$TMP/bg.db"
export BUZZGATE_LISTEN="127.0.0.1:$PORT"
export BUZZGATE_SIGNING_KEY_FILE="$TMP/key.pem"
export BUZZGATE_RATE_LIMIT_TOKEN=off
export BUZZGATE_RATE_LIMIT_AUTHORIZE=off

BG_USER=alice
BG_PASSWORD="interop-$RANDOM-$RANDOM-password"
BG_REDIRECT_URI=http://127.0.0.1:9999/callback

echo "== registering user and client"
printf '%s\n' "$BG_PASSWORD" | "$BIN" user add "$BG_USER" --email alice@example.com --password-stdin
CLIENT_JSON=$("$BIN" client add --owner "$BG_USER" --name "Authlib check" \
    --redirect-uri "$BG_REDIRECT_URI" --json)
BG_CLIENT_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientId"])' "$CLIENT_JSON")
BG_CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientSecret"])' "$CLIENT_JSON")

echo "== starting buzzgate on $BUZZGATE_LISTEN"
"$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

BG_URL="http://$BUZZGATE_LISTEN"
for _ in $(seq 1 60); do
    if python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$BG_URL/healthz" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "buzzgate exited during startup" >&2; exit 1; }
    sleep 0.5
done
python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$BG_URL/healthz" 2>/dev/null || { echo "buzzgate did not answer /healthz within 30 s" >&2; exit 1; }

python3 -c 'import authlib' 2>/dev/null || python3 -m pip install -q authlib requests

echo "== running the authlib flow"
export BG_URL BG_USER BG_PASSWORD BG_CLIENT_ID BG_CLIENT_SECRET BG_REDIRECT_URI
python3 tests/interop/authlib_flow.py
