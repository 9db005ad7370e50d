#!/usr/bin/env bash
# FHIR R4 on the hub, end to end with the real binaries:
#   - `plan export --format fhir` of every seeded plan (and the example plan) is valid against
#     the official FHIR R4 JSON schema and the UK Core rules we rely on (tests/fhir/validate.js);
#   - round trip over the seeded plans: export -> import on a second hub -> the same clinical
#     plan, and export -> import -> export gives the same bundle;
#   - bad bundles: exit 2, an OperationOutcome naming the path, nothing stored;
#   - the read API over HTTPS: metadata, Patient / CarePlan (_include) / Flag by NHS number,
#     reads by id, paging, only published consented plans in the client's scope, an
#     OperationOutcome for every error, bearer tokens (missing, forged, revoked), every read
#     answered by `cmc-hub audit PLAN`, and no NHS number in the hub's log.
# On both stores (SQLCipher, then PostgreSQL: every hub its own database); the PostgreSQL
# half is skipped (exit 77 with the reason) when no server can start here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/pg_fixture.sh"
trap 'pg_fixture_stop; e2e_cleanup' EXIT

[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"
need_fhir_validator
NHS_SYS=https://fhir.nhs.uk/Id/nhs-number
NHS_A=9434765919 # the example plan

# run_case STORE: the whole test on one store; on PostgreSQL the round trip's second and
# third hubs have databases of their own.
run_case() {
  local store=$1
  HUB_DIR="$E2E_TMP/$store/hub"
  HUB_B="$E2E_TMP/$store/hub-b"
  HUB_C="$E2E_TMP/$store/hub-c"
  DB_B=; DB_C=
  if [ "$store" = postgresql ]; then
    DB_B=$(pg_fixture_db fhir_b) && DB_C=$(pg_fixture_db fhir_c) || fail "create databases"
  fi
  rm -rf "$E2E_TMP/a"
  mkdir -p "$E2E_TMP/$store"
  hub_init_users
  hub seed --plans 24 --seed 7 >/dev/null || fail "seed"
  ID_A=$(hub plan import "$EXAMPLE" --as nurse1) || fail "import example"
  hub plan submit "$ID_A" --as nurse1 >/dev/null && hub plan approve "$ID_A" --as gp1 >/dev/null || fail "publish example"

  # ---- export: every plan, every status, valid FHIR ---------------------------------------------
  mkdir -p "$E2E_TMP/a"
  hub --json plan list >"$E2E_TMP/plans.json"
  n=0
  for id in $(jq -r '.[].plan_id' "$E2E_TMP/plans.json"); do
    hub plan export "$id" --format fhir --as gp1 >"$E2E_TMP/a/$id.json" || fail "export $id"
    n=$((n + 1))
  done
  [ "$n" -ge 25 ] || fail "exported only $n plans"
  validate "$E2E_TMP"/a/*.json
  pass "$store: export: $n plans valid against fhir.schema.json (R4) and the UK Core rules ($(tail -1 "$E2E_TMP/validate.out"))"
  jq -e --arg s "$NHS_SYS" '.entry[] | select(.resource.resourceType == "Patient") | .resource.identifier[] | select(.system == $s and .value == "9434765919")' \
    "$E2E_TMP/a/$ID_A.json" >/dev/null || fail "the example's Patient lacks its NHS number"
  jq -e '.entry[] | select(.resource.resourceType == "CarePlan") | .resource.status == "active"' "$E2E_TMP/a/$ID_A.json" >/dev/null \
    || fail "a published plan is not an active CarePlan"
  jq -e '[.entry[].resource | select(.resourceType == "Observation") | .valueCodeableConcept.coding[] | select(.code == "450476008")] | length == 1' \
    "$E2E_TMP/a/$ID_A.json" >/dev/null || fail "the example's DNACPR decision is not coded 450476008"
  DRAFT=$(jq -r '[.[] | select(.status == "draft")][0].plan_id' "$E2E_TMP/plans.json")
  jq -e '.entry[] | select(.resource.resourceType == "CarePlan") | .resource.status == "draft"' "$E2E_TMP/a/$DRAFT.json" >/dev/null \
    || fail "a draft is not a draft CarePlan"

  # ---- round trip over the seeded plans -----------------------------------------------------------
  hub_b init >/dev/null && hub_b user add nurse1 --role clinician >/dev/null
  hub_c init >/dev/null && hub_c user add nurse1 --role clinician >/dev/null
  META='del(.status, .version, .approved_by, .approved_at, .review_due, .updated_at)'
  for id in $(jq -r '.[].plan_id' "$E2E_TMP/plans.json"); do
    got=$(hub_b plan import "$E2E_TMP/a/$id.json" --format fhir --as nurse1) || fail "import $id"
    [ "$got" = "$id" ] || fail "import of $id made plan $got"
    hub plan show "$id" --json | jq -S "$META" >"$E2E_TMP/x.json"
    hub_b plan show "$id" --json | jq -S "$META" >"$E2E_TMP/y.json"
    diff -u "$E2E_TMP/x.json" "$E2E_TMP/y.json" >&2 || fail "plan $id changed on its way through FHIR"
    hub_b plan export "$id" --format fhir --as nurse1 >"$E2E_TMP/b.json"
    hub_c plan import "$E2E_TMP/b.json" --format fhir --as nurse1 >/dev/null || fail "re-import $id"
    hub_c plan export "$id" --format fhir --as nurse1 >"$E2E_TMP/c.json"
    jq -S 'del(.entry[].resource.meta.lastUpdated)' "$E2E_TMP/b.json" >"$E2E_TMP/b.s"
    jq -S 'del(.entry[].resource.meta.lastUpdated)' "$E2E_TMP/c.json" >"$E2E_TMP/c.s"
    cmp -s "$E2E_TMP/b.s" "$E2E_TMP/c.s" || fail "export -> import -> export of $id is not the same bundle"
  done
  # the seeded plans carry the second edition, so the round trip above covers its fields
  ed2=$(grep -l '"urn:cmc:fhir:ext:recommendations.cpr"' "$E2E_TMP"/a/*.json | wc -l)
  adrt=$(jq -s '[.[] | select(any(.entry[].resource; .resourceType == "Consent" and .scope.coding[0].code == "adr"))] | length' "$E2E_TMP"/a/*.json)
  coded=$(jq -s '[.[] | select(any(.entry[].resource; .resourceType == "Condition" and .code.coding != null))] | length' "$E2E_TMP"/a/*.json)
  [ "$ed2" -ge 10 ] && [ "$adrt" -ge 1 ] && [ "$coded" -ge 10 ] || fail "seeded plans lack second-edition content (recommendations $ed2, ADRT $adrt, coded $coded)"
  pass "$store: round trip: $n seeded plans the same after export, import and export again ($ed2 with ReSPECT recommendations, $adrt with an ADRT, $coded with coded diagnoses)"

  # ---- bad input: an OperationOutcome naming the path, exit 2, nothing stored --------------------
  before=$(hub_c --json plan list | jq length)
  jq --arg s "$NHS_SYS" '(.entry[0].resource.identifier[0].system) = "https://example.org/mrn" | (.entry[1].resource.id) = "0b9e5a44-8f0c-4c55-9f3b-2d1e8f0b6a11"' \
    "$E2E_TMP/a/$ID_A.json" >"$E2E_TMP/bad1.json"
  expect_exit 2 hub_c plan import "$E2E_TMP/bad1.json" --format fhir --as nurse1
  [ "$(jq -r '.resourceType' "$E2E_TMP/last.out")" = OperationOutcome ] || fail "no OperationOutcome: $(last_out)"
  [ "$(jq -r '.issue[0].expression[0]' "$E2E_TMP/last.out")" = "Bundle.entry[0].resource.identifier" ] || fail "path not named: $(last_out)"
  last_err | grep -q "nhs-number" || fail "stderr does not say what is missing: $(last_err)"
  validate_later "$E2E_TMP/last.out"
  jq '(.entry[0].resource.identifier[0].value) = "9434765910" | (.entry[1].resource.id) = "0b9e5a44-8f0c-4c55-9f3b-2d1e8f0b6a12"' \
    "$E2E_TMP/a/$ID_A.json" >"$E2E_TMP/bad2.json"
  expect_exit 2 hub_c plan import "$E2E_TMP/bad2.json" --format fhir --as nurse1
  [ "$(jq -r '.issue[0].expression[0]' "$E2E_TMP/last.out")" = "Bundle.entry[0].resource.identifier[0].value" ] || fail "check digit path: $(last_out)"
  printf '{"resourceType": "Bundle", "type": "collection", "entry": [' >"$E2E_TMP/bad3.json"
  expect_exit 2 hub_c plan import "$E2E_TMP/bad3.json" --format fhir --as nurse1
  [ "$(hub_c --json plan list | jq length)" = "$before" ] || fail "a refused import stored something"
  pass "$store: bad bundles: exit 2, OperationOutcome with the path, nothing stored"

  # ---- the read API ------------------------------------------------------------------------------
  start_hub
  expect_exit 0 hub --json client add ambulance-epr --scope all
  TOKEN=$(jget .token)
  expect_exit 0 hub --json client add north-only --scope region:north-central-london
  TOKEN_N=$(jget .token)
  expect_exit 0 hub --json client add gone --scope all
  TOKEN_GONE=$(jget .token)
  expect_exit 0 hub client revoke gone
  expect_exit 0 hub --json client list
  [ "$(jq -r '.[] | select(.name == "gone") | .revoked' "$E2E_TMP/last.out")" = true ] || fail "revoked client not listed as revoked"
  jq -e '.[] | select(.token != null)' "$E2E_TMP/last.out" >/dev/null && fail "client list shows a token"

  F="$HUB_URL/fhir/R4"
  get() { # get NAME URL [TOKEN]: saves the body to $E2E_TMP/NAME.json, prints the status
    curl -s --cacert "$CA" -o "$E2E_TMP/$1.json" -w '%{http_code} %{content_type}' ${3:+-H "Authorization: Bearer $3"} "$2"
  }
  # expect_outcomes "CODE|URL|TOKEN"...: each answered CODE with a valid OperationOutcome
  expect_outcomes() {
    local spec code url tok got
    for spec in "$@"; do
      IFS='|' read -r code url tok <<<"$spec"
      got=$(get err "$url" "$tok" | cut -c1-3)
      [ "$got" = "$code" ] || fail "expected $code, got $got for $url"
      [ "$(jq -r .resourceType "$E2E_TMP/err.json")" = OperationOutcome ] || fail "no OperationOutcome for $url"
      validate_later "$E2E_TMP/err.json"
    done
  }
  [ "$(get meta "$F/metadata")" = "200 application/fhir+json" ] || fail "metadata"
  validate_later "$E2E_TMP/meta.json"
  [ "$(get pat "$F/Patient?identifier=$NHS_SYS%7C$NHS_A" "$TOKEN")" = "200 application/fhir+json" ] || fail "Patient search"
  [ "$(jq -r '.total' "$E2E_TMP/pat.json")" = 1 ] || fail "Patient search total"
  validate_later "$E2E_TMP/pat.json"
  [ "$(get cp "$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A&status=active&_include=*" "$TOKEN" | cut -c1-3)" = 200 ] || fail "CarePlan search"
  validate_later "$E2E_TMP/cp.json"
  jq -e '[.entry[] | select(.search.mode == "match") | .resource.resourceType] == ["CarePlan"]' "$E2E_TMP/cp.json" >/dev/null || fail "CarePlan match"
  for t in Patient Observation Consent Condition MedicationStatement AllergyIntolerance RelatedPerson PractitionerRole; do
    jq -e --arg t "$t" '[.entry[] | select(.search.mode == "include" and .resource.resourceType == $t)] | length > 0' "$E2E_TMP/cp.json" >/dev/null \
      || fail "_include=* lacks $t"
  done
  [ "$(get cp2 "$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A&_include=CarePlan:subject" "$TOKEN" | cut -c1-3)" = 200 ] || fail "CarePlan:subject"
  jq -e '[.entry[].resource.resourceType] | sort == ["CarePlan", "Patient"]' "$E2E_TMP/cp2.json" >/dev/null || fail "CarePlan:subject includes more than the Patient"
  [ "$(get flag "$F/Flag?patient.identifier=$NHS_SYS%7C$NHS_A" "$TOKEN" | cut -c1-3)" = 200 ] || fail "Flag search"
  validate_later "$E2E_TMP/flag.json"
  jq -e '.total == 1 and .entry[0].resource.code.text == "Has an urgent care plan"' "$E2E_TMP/flag.json" >/dev/null || fail "Flag"
  [ "$(get read "$F/CarePlan/$ID_A" "$TOKEN" | cut -c1-3)" = 200 ] || fail "read CarePlan by id"
  jq -e --arg id "$ID_A" '.resourceType == "CarePlan" and .id == $id and .status == "active"' "$E2E_TMP/read.json" >/dev/null || fail "read by id"
  validate_later "$E2E_TMP/read.json"
  [ "$(get read2 "$F/Patient/$ID_A-pat" "$TOKEN" | cut -c1-3)" = 200 ] || fail "read Patient by id"
  validate_later "$E2E_TMP/cp2.json" "$E2E_TMP/read2.json"
  pass "$store: read API: metadata, Patient, CarePlan with _include, Flag, reads by id"

  # second-edition content as UK systems read it: a seeded published plan with ReSPECT
  # recommendations, coded diagnoses and relatives
  ED2=$(jq -r '[.[] | select(.status == "published" and .plan_id != "'"$ID_A"'")][0].plan_id' "$E2E_TMP/plans.json")
  ED2_NHS=$(jq -r --arg id "$ED2" '.[] | select(.plan_id == $id) | .nhs_number' "$E2E_TMP/plans.json")
  hub plan show "$ED2" --json >"$E2E_TMP/ed2.plan.json"
  [ "$(get ed2 "$F/CarePlan?patient.identifier=$NHS_SYS%7C$ED2_NHS&_include=*" "$TOKEN" | cut -c1-3)" = 200 ] || fail "second-edition plan"
  validate_later "$E2E_TMP/ed2.json"
  SCT=http://snomed.info/sct
  for rec in $(jq -r '.recommendations // {} | to_entries[] | select(.value == "not_recommended" or .value == "recommended" or .value == "discuss") | .key' "$E2E_TMP/ed2.plan.json"); do
    want=$(jq -r --arg k "$rec" '.recommendations[$k] == "not_recommended"' "$E2E_TMP/ed2.plan.json")
    jq -e --arg p "recommendations.$rec" --argjson want "$want" '[.entry[].resource | select(.resourceType == "CarePlan") | .activity[].detail
        | select(any(.code.coding[]; .code == $p)) | .doNotPerform == $want] == [true]' "$E2E_TMP/ed2.json" >/dev/null \
      || fail "recommendation $rec: not one activity with doNotPerform $want"
  done
  [ -n "${rec:-}" ] || fail "the seeded plan has no ReSPECT recommendations to check"
  jq -e --arg s "$SCT" '[.entry[].resource | select(.resourceType == "CarePlan") | .activity[].detail
      | select(any(.code.coding[]; .code == "recommendations.cpr")) | .code.coding[] | select(.system == $s) | .code] == ["89666000"]' \
    "$E2E_TMP/ed2.json" >/dev/null || fail "the CPR recommendation is not coded with SNOMED CT 89666000"
  for code in $(jq -r '.diagnoses[] | .snomed // empty' "$E2E_TMP/ed2.plan.json"); do
    jq -e --arg s "$SCT" --arg c "$code" '[.entry[].resource | select(.resourceType == "Condition") | .code.coding[]? | select(.system == $s and .code == $c)] | length == 1' \
      "$E2E_TMP/ed2.json" >/dev/null || fail "diagnosis $code not coded"
  done
  jq -e '[.entry[].resource | select(.resourceType == "Condition") | .code.text | strings] | length > 0' "$E2E_TMP/ed2.json" >/dev/null || fail "a coded diagnosis lost its text"
  if jq -e '[.contacts[] | select(.relationship == "son" or .relationship == "daughter" or .relationship == "spouse")] | length > 0' "$E2E_TMP/ed2.plan.json" >/dev/null; then
    jq -e '[.entry[].resource | select(.resourceType == "RelatedPerson") | .relationship[]?.coding[]? | select(.system == "http://terminology.hl7.org/CodeSystem/v3-RoleCode")] | length > 0' \
      "$E2E_TMP/ed2.json" >/dev/null || fail "relatives' relationships not coded in v3 RoleCode"
  fi
  if jq -e '.adrt.refuses != null' "$E2E_TMP/ed2.plan.json" >/dev/null; then
    jq -e '[.entry[].resource | select(.resourceType == "Consent" and .scope.coding[0].code == "adr") | .provision.type] == ["deny"]' \
      "$E2E_TMP/ed2.json" >/dev/null || fail "the ADRT is not a Consent of scope adr denying the treatment"
  fi
  pass "$store: second edition: ReSPECT recommendations as activities (doNotPerform, SNOMED CT), coded diagnoses with text, relationships, ADRT"

  # only published, consented plans in scope
  DRAFT_NHS=$(jq -r --arg id "$DRAFT" '.[] | select(.plan_id == $id) | .nhs_number' "$E2E_TMP/plans.json")
  [ "$(get d "$F/CarePlan?patient.identifier=$NHS_SYS%7C$DRAFT_NHS" "$TOKEN" | cut -c1-3)" = 200 ] || fail "draft search"
  [ "$(jq -r '.total' "$E2E_TMP/d.json")" = 0 ] || fail "a draft was served"
  [ "$(get d2 "$F/CarePlan/$DRAFT" "$TOKEN" | cut -c1-3)" = 404 ] || fail "a draft was read by id"
  validate_later "$E2E_TMP/d.json" "$E2E_TMP/d2.json"
  [ "$(get s "$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A" "$TOKEN_N" | cut -c1-3)" = 200 ] || fail "scoped search"
  [ "$(jq -r '.total' "$E2E_TMP/s.json")" = 0 ] || fail "a plan outside the client's scope was served"
  WD=$(jq -r '[.[] | select(.status == "published" and .plan_id != "'"$ID_A"'")][0].plan_id' "$E2E_TMP/plans.json")
  WD_NHS=$(jq -r --arg id "$WD" '.[] | select(.plan_id == $id) | .nhs_number' "$E2E_TMP/plans.json")
  [ "$(get w "$F/CarePlan?patient.identifier=$NHS_SYS%7C$WD_NHS" "$TOKEN" | cut -c1-3)" = 200 ] && [ "$(jq -r .total "$E2E_TMP/w.json")" = 1 ] || fail "published plan before withdrawal"
  hub plan withdraw-consent "$WD" --as gp1 --reason "patient asked to stop sharing" >/dev/null
  [ "$(get w "$F/CarePlan?patient.identifier=$NHS_SYS%7C$WD_NHS" "$TOKEN" | cut -c1-3)" = 200 ] && [ "$(jq -r .total "$E2E_TMP/w.json")" = 0 ] || fail "a withdrawn plan was served"
  [ "$(get w2 "$F/CarePlan/$WD" "$TOKEN" | cut -c1-3)" = 404 ] || fail "a withdrawn plan was read by id"
  expect_exit 1 hub plan export "$WD" --format fhir --as gp1
  pass "$store: only published, consented plans inside the client's scope"

  # paging
  [ "$(get p1 "$F/CarePlan?status=active&_count=5" "$TOKEN" | cut -c1-3)" = 200 ] || fail "page 1"
  validate_later "$E2E_TMP/p1.json"
  NEXT=$(jq -r '.link[] | select(.relation == "next") | .url' "$E2E_TMP/p1.json")
  [ -n "$NEXT" ] || fail "no next link"
  [ "$(get p2 "$NEXT" "$TOKEN" | cut -c1-3)" = 200 ] || fail "page 2"
  validate_later "$E2E_TMP/p2.json"
  [ "$(jq '[.entry[] | select(.search.mode == "match")] | length' "$E2E_TMP/p1.json")" = 5 ] || fail "page size"
  jq -n --slurpfile a "$E2E_TMP/p1.json" --slurpfile b "$E2E_TMP/p2.json" \
    '([$a[0].entry[].resource.id] - ([$a[0].entry[].resource.id] - [$b[0].entry[].resource.id])) | length == 0' | grep -q true || fail "pages overlap"
  pages=1; url=$NEXT; seen=5
  while [ -n "$url" ]; do
    get pn "$url" "$TOKEN" >/dev/null
    validate_later "$E2E_TMP/pn.json"
    seen=$((seen + $(jq '[.entry[] | select(.search.mode == "match")] | length' "$E2E_TMP/pn.json")))
    url=$(jq -r '.link[] | select(.relation == "next") | .url' "$E2E_TMP/pn.json"); pages=$((pages + 1))
  done
  [ "$seen" -ge 10 ] || fail "paging walked only $seen plans"
  pass "$store: paging: $seen active plans in $pages pages of 5"

  # errors are OperationOutcomes
  last=${TOKEN: -1}; [ "$last" = 0 ] && flip=1 || flip=0
  FORGED=${TOKEN%?}$flip
  expect_outcomes "401|$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A|" \
                  "401|$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A|$FORGED" \
                  "401|$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A|$TOKEN_GONE" \
                  "400|$F/Patient?identifier=$NHS_SYS%7C9434765910|$TOKEN" \
                  "400|$F/Patient?identifier=https://example.org/mrn%7C$NHS_A|$TOKEN" \
                  "400|$F/CarePlan?name=Okafor|$TOKEN" \
                  "400|$F/CarePlan?_include=CarePlan:author|$TOKEN" \
                  "404|$F/CarePlan/00000000-0000-4000-8000-000000000000|$TOKEN" \
                  "404|$F/Encounter/x|$TOKEN"
  [ "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" "$F/CarePlan")" = 405 ] || fail "POST not refused"
  pass "$store: errors: 400, 401 (no, forged, revoked token), 404, 405, each an OperationOutcome"

  # audit: every read is answered by `cmc-hub audit PLAN`; the log names no patient
  expect_exit 0 hub --json audit "$NHS_A"
  jq -e '[.[] | select(.user == "ambulance-epr" and .role == "fhir_client" and (.action | startswith("FHIR search CarePlan")))] | length >= 2' \
    "$E2E_TMP/last.out" >/dev/null || fail "CarePlan reads not in the audit: $(last_out)"
  jq -e '[.[] | select(.action == "FHIR read CarePlan")] | length == 1' "$E2E_TMP/last.out" >/dev/null || fail "read by id not audited"
  jq -e '[.[] | select(.user == "gp1" and .action == "export FHIR")] | length == 1' "$E2E_TMP/last.out" >/dev/null || fail "export not audited"
  expect_exit 0 hub --json audit "$DRAFT_NHS"
  jq -e '[.[] | select(.action == "FHIR search, nothing shared")] | length >= 1' "$E2E_TMP/last.out" >/dev/null || fail "a look-up that found nothing is not audited"

  # AuditEvent: a client registered with --scope audit reads who looked, and nothing else
  expect_exit 0 hub --json client add privacy-office --scope audit
  TOKEN_AUD=$(jget .token)
  expect_exit 2 hub client add bad-scope --scope audits
  [ "$(get ae "$F/AuditEvent?patient.identifier=$NHS_SYS%7C$NHS_A" "$TOKEN_AUD" | cut -c1-3)" = 200 ] || fail "AuditEvent search: $(cat "$E2E_TMP/ae.json")"
  validate_later "$E2E_TMP/ae.json"
  hub --json audit "$NHS_A" >"$E2E_TMP/cli-audit.json"
  # the same entries as cmc-hub audit, which also lists this search (recorded as it was answered)
  [ "$(( $(jq '.total' "$E2E_TMP/ae.json") + 1 ))" = "$(jq length "$E2E_TMP/cli-audit.json")" ] || fail "AuditEvent total differs from cmc-hub audit"
  jq -e '[.entry[].resource | select(.type.code == "rest" and (.agent[0].who.display == "ambulance-epr")
        and (.entity[0].what.identifier.value == "9434765919"))] | length >= 3' "$E2E_TMP/ae.json" >/dev/null || fail "FHIR reads not AuditEvents"
  jq -e '[.entry[].resource | select(.type.code == "110106" and .agent[0].who.display == "gp1")] | length == 1' "$E2E_TMP/ae.json" >/dev/null || fail "the export is not an AuditEvent"
  AE_ID=$(jq -r '.entry[0].resource.id' "$E2E_TMP/ae.json")
  [ "$(get ae1 "$F/AuditEvent/$AE_ID" "$TOKEN_AUD" | cut -c1-3)" = 200 ] || fail "AuditEvent read by id"
  validate_later "$E2E_TMP/ae1.json"
  jq -e --arg id "$AE_ID" '.resourceType == "AuditEvent" and .id == $id' "$E2E_TMP/ae1.json" >/dev/null || fail "AuditEvent by id"
  [ "$(get ae2 "$F/AuditEvent?patient.identifier=$NHS_SYS%7C$NHS_A&_count=2" "$TOKEN_AUD" | cut -c1-3)" = 200 ] || fail "AuditEvent page"
  jq -e '(.entry | length) == 2 and ([.link[] | select(.relation == "next")] | length) == 1' "$E2E_TMP/ae2.json" >/dev/null || fail "AuditEvent paging"
  expect_outcomes "403|$F/AuditEvent?patient.identifier=$NHS_SYS%7C$NHS_A|$TOKEN" \
                  "403|$F/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A|$TOKEN_AUD" \
                  "403|$F/Patient/$ID_A-pat|$TOKEN_AUD" \
                  "400|$F/AuditEvent|$TOKEN_AUD" \
                  "404|$F/AuditEvent/hub-999999|$TOKEN_AUD" \
                  "401|$F/AuditEvent?patient.identifier=$NHS_SYS%7C$NHS_A|"
  expect_exit 0 hub --json audit "$NHS_A"
  jq -e '[.[] | select(.user == "privacy-office" and .action == "FHIR search AuditEvent")] | length >= 2' "$E2E_TMP/last.out" >/dev/null \
    || fail "reading the audit is not itself audited"
  pass "$store: AuditEvent: every read and export served to a --scope audit client; others get 403; reading it is audited"
  n=$(validate_queued)
  pass "$store: every FHIR answer and file above ($n) valid against fhir.schema.json (R4) and the UK Core rules"
  stop_hub
  for nhs in $NHS_A $DRAFT_NHS $WD_NHS; do
    grep -q "$nhs" "$E2E_TMP/hub.log" && fail "the hub log names an NHS number"
  done
  pass "$store: every read in cmc-hub audit; no NHS number in the hub log"
}
hub_b() { CMC_HUB_DB="$DB_B" "$HUB" --dir "$HUB_B" "$@"; }
hub_c() { CMC_HUB_DB="$DB_C" "$HUB" --dir "$HUB_C" "$@"; }

pg_fixture_both run_case fhir_a
