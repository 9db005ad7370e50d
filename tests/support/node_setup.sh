# node_setup.sh - sourced by the setup scripts of the Node.js test tools (tests/web/setup.sh,
# tests/fhir/setup.sh): installs what they need, only when missing, quietly. Each helper
# fails (exit 1) with one clear line when something cannot be installed (no network, not
# root), so the tests that need it fail rather than pass unseen.
#
# Set SETUP_NAME (how the messages name the tools) before calling.

# need_debs COMMAND=PACKAGE...: installs with apt the Debian package of every missing command.
need_debs() {
  local want missing=()
  for want in "$@"; do
    command -v "${want%%=*}" >/dev/null 2>&1 || missing+=("${want#*=}")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$SETUP_NAME setup: ${missing[*]} missing and not root: run scripts/install-deps.sh as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
    echo "$SETUP_NAME setup: cannot install ${missing[*]} with apt (no network or no package source?)" >&2
    exit 1
  fi
}

# need_pinned DIR: every package in DIR/package.json at its pinned version, installed with
# `npm ci` (package-lock.json) into DIR/node_modules when any is missing or another version.
need_pinned() {
  local dir=$1 stale
  stale=$(node -e "
    const deps = require('$dir/package.json').dependencies;
    for (const [name, want] of Object.entries(deps)) {
      let have = '';
      try { have = require('$dir/node_modules/' + name + '/package.json').version; } catch (e) {}
      if (have !== want) { console.log(name + '@' + want); }
    }")
  [ -n "$stale" ] || return 0
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    echo "$SETUP_NAME setup: cannot install $(echo $stale) with npm (no network?)" >&2
    exit 1
  fi
}
