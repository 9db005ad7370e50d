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

# every pinned package (playwright-core, @axe-core/playwright) at its pinned version
stale=$(node -e "
  const deps = require('$here/package.json').dependencies;
  for (const [name, want] of Object.entries(deps)) {
    let have = '';
    try { have = require('$here/node_modules/' + name + '/package.json').version; } catch (e) {}
    if (have !== want) { console.log(name + '@' + want); }
  }")
if [ -n "$stale" ]; then
  # Playwright must not fetch browsers of its own; Debian's Chromium is the one under test.
  if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    echo "web setup: cannot install $(echo $stale) with npm (no network?)" >&2
    exit 1
  fi
fi
exit 0
