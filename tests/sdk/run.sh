#!/usr/bin/env bash
# Civitai's published app SDK (@civitai/app-sdk, pinned in package.json and
# package-lock.json) against the buzzgate binary: tests/sdk/flow.mjs drives every OAuth
# function it exports, Buzz balance included. Needs Node.js 20+ and the npm registry; without
# Node it prints a SKIP line and passes, unless BUZZGATE_REQUIRE_SERVICES=1 (CI), where that
# is a failure. Exit code = the flow's.
set -euo pipefail

if ! command -v node >/dev/null 2>&1 || ! node -e "process.exit(Number(process.versions.node.split('.')[0]) < 20 ? 1 : 0)"; then
    if [[ ${BUZZGATE_REQUIRE_SERVICES:-} == 1 ]]; then
        echo "civitai sdk: Node.js 20+ is required (BUZZGATE_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "SKIP civitai sdk: Node.js 20+ not found"
    exit 0
fi

# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

echo "== installing @civitai/app-sdk (pinned)"
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)

bg_start "Civitai SDK check"
export BG_BUZZ=1234
"$BIN" buzz credit "$BG_USER" "$BG_BUZZ" >/dev/null

echo "== running the @civitai/app-sdk flow"
node tests/sdk/flow.mjs
