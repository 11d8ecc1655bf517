# Shared by the interoperability checks (tests/interop, tests/node): builds buzzgate, serves it
# over a throwaway SQLite database on a random port, and registers a user and a confidential
# client. Source it from a script running under `set -euo pipefail`, then call
# `bg_start "<app name>"`. With BG_BIND_CLIENT=1 the server binds that client as seed 000's
# CIVITAI_CLIENT_ID / CIVITAI_CLIENT_SECRET. It exports BIN, BG_URL, BG_USER, BG_PASSWORD, BG_CLIENT_ID,
# BG_CLIENT_SECRET and BG_REDIRECT_URI, and stops the server (printing its log on failure) when
# the calling script exits. With BUZZGATE_BIN=<path> it serves that binary and builds nothing;
# with BG_SKIP_BUILD=1 it serves the target dir's binary as it is.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/buzzgate-check.XXXXXX")
SERVER_PID=""
bg_cleanup() {
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
trap bg_cleanup EXIT

bg_healthy() {
    python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$BG_URL/healthz" 2>/dev/null
}

# bg_start <client name> [client add options…]: build (release when BG_PROFILE=release; nothing
# when BUZZGATE_BIN or BG_SKIP_BUILD=1 is set), register, serve, and wait for /healthz.
bg_start() {
    local name=$1
    shift
    local profile=${BG_PROFILE:-debug}
    if [[ -n ${BUZZGATE_BIN:-} ]]; then
        # A binary built elsewhere (e.g. copied aside while another build runs): no cargo.
        echo "== using $BUZZGATE_BIN (BUZZGATE_BIN; not building)"
        BIN=$BUZZGATE_BIN
    elif [[ ${BG_SKIP_BUILD:-} == 1 ]]; then
        BIN="$TARGET_DIR/$profile/buzzgate"
        echo "== using $BIN as built (BG_SKIP_BUILD=1)"
    else
        echo "== building buzzgate ($profile)"
        if [[ $profile == release ]]; then
            cargo build -q --release -p buzzgate --bin buzzgate
        else
            cargo build -q -p buzzgate --bin buzzgate
        fi
        BIN="$TARGET_DIR/$profile/buzzgate"
    fi
    [[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }

    local port=$((18080 + RANDOM % 1000))
    export DATABASE_URL="sqlite://$TMP/bg.db"
    export BUZZGATE_LISTEN="127.0.0.1:$port"
    export BUZZGATE_SIGNING_KEY_FILE="$TMP/key.pem"
    export BUZZGATE_RATE_LIMIT_TOKEN=off
    export BUZZGATE_RATE_LIMIT_AUTHORIZE=off

    BG_USER=alice
    BG_PASSWORD="check-$RANDOM-$RANDOM-password"
    BG_REDIRECT_URI=http://127.0.0.1:9999/callback

    echo "== registering user and client"
    printf '%s\n' "$BG_PASSWORD" | "$BIN" user add "$BG_USER" --email alice@example.com --password-stdin
    local client_json
    client_json=$("$BIN" client add --owner "$BG_USER" --name "$name" \
        --redirect-uri "$BG_REDIRECT_URI" --json "$@")
    BG_CLIENT_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientId"])' "$client_json")
    BG_CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientSecret"])' "$client_json")

    if [[ ${BG_BIND_CLIENT:-} == 1 ]]; then
        # Seed 000's bound client (docs/mcp.md): the MCP tools use it when a call names none.
        export CIVITAI_CLIENT_ID="$BG_CLIENT_ID" CIVITAI_CLIENT_SECRET="$BG_CLIENT_SECRET"
    fi
    echo "== starting buzzgate on $BUZZGATE_LISTEN"
    "$BIN" serve >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    BG_URL="http://$BUZZGATE_LISTEN"
    for _ in $(seq 1 60); do
        bg_healthy && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "buzzgate exited during startup" >&2; exit 1; }
        sleep 0.5
    done
    bg_healthy || { echo "buzzgate did not answer /healthz within 30 s" >&2; exit 1; }
    export BIN BG_URL BG_USER BG_PASSWORD BG_CLIENT_ID BG_CLIENT_SECRET BG_REDIRECT_URI SERVER_PID
}
