#!/usr/bin/env bash
# Buzzgate's pages in headless Chromium (tests/browser/pages.mjs, playwright-core pinned in
# package.json and package-lock.json): sign-in and sign-up, creating and managing an app, the
# consent page with a Buzz cap, Connected Apps, API keys, device approval, /admin and the
# security headers. Every element is found by its role and accessible name (SPEC 15); each
# key page is screenshotted at 390 px and 1280 px into ${BROWSER_SHOTS:-target/browser-shots}.
#
# Needs Node.js 20+ and Chromium ($CHROMIUM or /usr/bin/chromium). Under CI=true or
# BUZZGATE_REQUIRE_SERVICES=1, as root, a missing Chromium is installed with apt-get. Without
# them it prints a SKIP line and passes, unless BUZZGATE_REQUIRE_SERVICES=1 (CI), where that is
# a failure. BUZZGATE_BIN=<path> serves that binary instead of building one (tests/lib/serve.sh).
set -euo pipefail

require=${BUZZGATE_REQUIRE_SERVICES:-}

if ! command -v node >/dev/null 2>&1 || ! node -e "process.exit(Number(process.versions.node.split('.')[0]) < 20 ? 1 : 0)"; then
    if [[ $require == 1 ]]; then
        echo "browser checks: Node.js 20+ is required (BUZZGATE_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "SKIP browser checks: Node.js 20+ not found"
    exit 0
fi

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
    if [[ ( ${CI:-} == true || $require == 1 ) && $(id -u) == 0 ]]; then
        echo "== installing chromium"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            apt-get install -y -qq chromium >/dev/null 2>&1 || true
        fi
    fi
    [[ -x $CHROMIUM ]] || CHROMIUM=/usr/bin/chromium
fi
if [[ ! -x $CHROMIUM ]]; then
    if [[ $require == 1 ]]; then
        echo "browser checks: Chromium is required (BUZZGATE_REQUIRE_SERVICES=1) and none was found at \$CHROMIUM or /usr/bin/chromium, nor could apt-get install it" >&2
        exit 1
    fi
    echo "SKIP browser checks: chromium not found"
    exit 0
fi
export CHROMIUM

# shellcheck source=../lib/serve.sh
source "$(dirname "$0")/../lib/serve.sh"

echo "== installing the pinned playwright-core"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

BROWSER_SHOTS=${BROWSER_SHOTS:-target/browser-shots}
mkdir -p "$BROWSER_SHOTS"
rm -f "$BROWSER_SHOTS"/*.png
export BROWSER_SHOTS

# Sign-up is off by default; the checks sign a new person up.
export BUZZGATE_SIGNUP=open
# The app that asks for device approval (check 8); the checks create their other apps on the pages.
export BG_CLIENT_NAME="Browser checks"
bg_start "$BG_CLIENT_NAME" --grant urn:ietf:params:oauth:grant-type:device_code

echo "== registering an admin and a second user"
export BG_ADMIN_USER=root BG_ADMIN_PASSWORD="admin-$RANDOM-$RANDOM-password"
export BG_OTHER_USER=bob BG_OTHER_PASSWORD="other-$RANDOM-$RANDOM-password"
printf '%s\n' "$BG_ADMIN_PASSWORD" | "$BIN" user add "$BG_ADMIN_USER" --email root@example.com --admin --password-stdin
printf '%s\n' "$BG_OTHER_PASSWORD" | "$BIN" user add "$BG_OTHER_USER" --email bob@example.com --password-stdin

echo "== pages in headless Chromium ($("$CHROMIUM" --version 2>/dev/null | head -n1))"
node tests/browser/pages.mjs
