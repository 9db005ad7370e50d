#!/usr/bin/env bash
# Installs what the browser tests of the crew's page need, only when missing, quietly:
#   - Debian's Chromium, Node.js and npm (apt; scripts/install-deps.sh lists them too);
#   - playwright-core, pinned in package.json and package-lock.json (npm ci, into
#     tests/web/node_modules). Playwright's own browser download is never used: the tests
#     drive /usr/bin/chromium.
# Idempotent: a second run does nothing. Fails with one clear line when something cannot be
# installed (no network, not root), so the browser tests fail rather than pass unseen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "web setup: ${missing[*]} missing and not root: run scripts/install-deps.sh as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
    echo "web setup: cannot install ${missing[*]} with apt (no network or no package source?)" >&2
    exit 1
  fi
fi

want=$(node -p "require('$here/package.json').dependencies['playwright-core']")
have=$(node -p "try { require('$here/node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [ "$have" != "$want" ]; then
  # Playwright must not fetch browsers of its own; Debian's Chromium is the one under test.
  if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    echo "web setup: cannot install playwright-core $want with npm (no network?)" >&2
    exit 1
  fi
fi
exit 0
