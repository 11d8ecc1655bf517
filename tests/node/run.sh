#!/usr/bin/env bash
# Independent Node.js clients against the buzzgate binary, pinned in package.json and
# package-lock.json: Civitai's published app SDK (civitai_sdk.mjs: every OAuth function it
# exports, Buzz balance included) and openid-client, a certified OpenID Connect relying party
# (oidc_rp.mjs: discovery, code + PKCE with `openid profile email`, id_token validation,
# userinfo). Needs Node.js 20+ and the npm registry; without Node it prints a SKIP line and
# passes, unless BUZZGATE_REQUIRE_SERVICES=1 (CI), where that is a failure.
set -euo pipefail

if ! command -v node >/dev/null 2>&1 || ! node -e "process.exit(Number(process.versions.node.split('.')[0]) < 20 ? 1 : 0)"; then
    if [[ ${BUZZGATE_REQUIRE_SERVICES:-} == 1 ]]; then
        echo "node checks: Node.js 20+ is required (BUZZGATE_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "SKIP node checks: Node.js 20+ not found"
    exit 0
fi

# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

echo "== installing the pinned clients"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

bg_start "Node checks"
export BG_BUZZ=1234
"$BIN" buzz credit "$BG_USER" "$BG_BUZZ" >/dev/null

echo "== @civitai/app-sdk"
node tests/node/civitai_sdk.mjs
echo "== openid-client"
node tests/node/oidc_rp.mjs
