#!/usr/bin/env bash
# Memory check (issue 9): serves a release build of buzzgate over a throwaway SQLite database
# and runs tests/memory/rss.py, which mints and validates 60,000 distinct tokens and fails if
# the node's resident memory grew by 24 MiB or more. Not part of CI (it takes minutes); run it
# with `cargo xtask memory`.
set -euo pipefail
export BG_PROFILE=release
# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"
export BUZZGATE_RATE_LIMIT_CLIENT_AUTH=off
bg_start "Memory check" --grant client_credentials
BG_PID=$SERVER_PID python3 tests/memory/rss.py
