#!/usr/bin/env bash
# Installs what the browser tests of the crew's page need, only when missing, quietly:
#   - Debian's Chromium, Node.js and npm (apt; scripts/install-deps.sh lists them too);
#   - playwright-core and the accessibility checker @axe-core/playwright, pinned in
#     package.json and package-lock.json (npm ci, into tests/web/node_modules). Playwright's own browser download is never used: the tests
#     drive /usr/bin/chromium.
# Idempotent: a second run does nothing. Fails with one clear line when something cannot be
# installed (no network, not root), so the browser tests fail rather than pass unseen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../support/node_setup.sh"
SETUP_NAME=web

need_debs chromium=chromium node=nodejs npm=npm
# Playwright must not fetch browsers of its own; Debian's Chromium is the one under test.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 need_pinned "$here"
exit 0
