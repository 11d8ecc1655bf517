#!/usr/bin/env bash
# Interop check with authlib: serves buzzgate over a throwaway SQLite database, registers a
# user and a confidential client, then runs tests/interop/authlib_flow.py.
# Exit code = the script's.
set -euo pipefail
# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

bg_start "Authlib check"

python3 -c 'import authlib' 2>/dev/null || python3 -m pip install -q authlib requests

echo "== running the authlib flow"
python3 tests/interop/authlib_flow.py
