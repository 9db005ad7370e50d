#!/usr/bin/env bash
# FHIR on the tablet, end to end: an urgent-care tablet synced from a real hub, an ePR app
# registered with `cmc-agent app add`, and `cmc-agent serve` answering /fhir/R4/ on loopback:
#   - no token or a wrong one: 401; a valid token while the page is locked: 423 and no data;
#   - unlocked (the crew's unlock form, as a browser would post it): the patient's active plan
#     by NHS number with _include, Patient, Flag and reads by id, valid against the FHIR R4
#     JSON schema and UK Core rules; a draft on the hub is not on the tablet nor served;
#   - every read is in the device's view log under the app's name and the unlocked user, and
#     reaches the hub's `cmc-hub audit PLAN` after a sync;
#   - locking the page stops the endpoint at once; a removed app is refused.
. "$(dirname "$0")/lib.sh"

[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"
need_fhir_validator
NHS_SYS=https://fhir.nhs.uk/Id/nhs-number
NHS_A=9434765919
NHS_D=4010232137

hub_init_users
A=$(hub plan import "$EXAMPLE" --as nurse1)
hub plan submit "$A" --as nurse1 >/dev/null && hub plan approve "$A" --as gp1 >/dev/null || fail "publish"
jq --arg n $NHS_D '.plan_id = "33333333-4444-4555-8666-777777777777" | .nhs_number = $n' "$EXAMPLE" >"$E2E_TMP/d.json"
hub plan import "$E2E_TMP/d.json" --as nurse1 >/dev/null || fail "draft"
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet all urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync
stop_hub

expect_exit 2 agent "$TABLET" app add "bad name"
expect_exit 0 agent "$TABLET" --json app add ambulance-epr
TOKEN=$(jget .token)
[ ${#TOKEN} -eq 64 ] || fail "app token"
grep -q "$TOKEN" "$TABLET/fhir-apps" && fail "the app token is stored in the clear"
expect_exit 1 agent "$TABLET" app add ambulance-epr   # the name is taken
expect_exit 0 agent "$TABLET" --json app list
[ "$(jq -r '.[0].app + " " + .[0].added_by' "$E2E_TMP/last.out")" = "ambulance-epr tablet-user" ] || fail "app list: $(last_out)"

PORT=$(( 20000 + RANDOM % 12000 ))
"$AGENT" --dir "$TABLET" serve --listen "127.0.0.1:$PORT" >"$E2E_TMP/page.out" 2>"$E2E_TMP/page.log" &
PAGE_PID=$!
for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/style.css" && break; sleep 0.1; done
T="http://127.0.0.1:$PORT/fhir/R4"
get() { curl -s -o "$E2E_TMP/$1.json" -w '%{http_code}' ${3:+-H "Authorization: Bearer $3"} "$2"; }
CP="$T/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_A&status=active&_include=*"

[ "$(get meta "$T/metadata")" = 200 ] || fail "metadata"
validate "$E2E_TMP/meta.json"
[ "$(get e "$CP")" = 401 ] || fail "no token"
[ "$(get e "$CP" "$(printf '%064d' 0)")" = 401 ] || fail "wrong token"
[ "$(get e "$CP" "$TOKEN")" = 423 ] || fail "locked: expected 423"
jq -e '.resourceType == "OperationOutcome" and (.entry == null)' "$E2E_TMP/e.json" >/dev/null || fail "locked answer"
validate "$E2E_TMP/e.json"
pass "tablet endpoint: 401 without a valid app token, 423 and nothing while locked"

# unlock the crew's page as its form does
JAR="$E2E_TMP/jar"
curl -s -c "$JAR" -o "$E2E_TMP/unlock.html" "http://127.0.0.1:$PORT/"
PRE=$(grep -o 'name="pre" value="[0-9a-f]*"' "$E2E_TMP/unlock.html" | sed 's/.*value="//; s/"$//')
[ -n "$PRE" ] || fail "no unlock form token"
code=$(curl -s -b "$JAR" -c "$JAR" -o /dev/null -w '%{http_code}' -H "Origin: http://127.0.0.1:$PORT" \
  --data-urlencode "pre=$PRE" --data-urlencode "user=tablet-user" --data-urlencode "pin=$CMC_PIN" "http://127.0.0.1:$PORT/unlock")
[ "$code" = 303 ] || [ "$code" = 200 ] || fail "unlock: $code"

[ "$(get cp "$CP" "$TOKEN")" = 200 ] || fail "CarePlan search on the tablet: $(cat "$E2E_TMP/cp.json")"
validate "$E2E_TMP/cp.json"
jq -e '.total == 1 and ([.entry[] | select(.search.mode == "match") | .resource.status] == ["active"])' "$E2E_TMP/cp.json" >/dev/null || fail "active plan"
jq -e '[.entry[].resource | select(.resourceType == "Observation") | .valueCodeableConcept.coding[] | select(.code == "450476008")] | length == 1' \
  "$E2E_TMP/cp.json" >/dev/null || fail "the DNACPR decision is not in the answer"
[ "$(get pat "$T/Patient?identifier=$NHS_SYS%7C$NHS_A" "$TOKEN")" = 200 ] || fail "Patient"
validate "$E2E_TMP/pat.json"
[ "$(get flag "$T/Flag?patient.identifier=$NHS_SYS%7C$NHS_A" "$TOKEN")" = 200 ] || fail "Flag"
jq -e '.total == 1' "$E2E_TMP/flag.json" >/dev/null || fail "Flag total"
validate "$E2E_TMP/flag.json"
[ "$(get r "$T/CarePlan/$A" "$TOKEN")" = 200 ] || fail "read by id"
validate "$E2E_TMP/r.json"
[ "$(get dr "$T/CarePlan?patient.identifier=$NHS_SYS%7C$NHS_D" "$TOKEN")" = 200 ] || fail "draft search"
jq -e '.total == 0' "$E2E_TMP/dr.json" >/dev/null || fail "a draft was served by the tablet"
validate "$E2E_TMP/dr.json"
[ "$(get e "$T/CarePlan?status=active" "$TOKEN")" = 400 ] || fail "a search without an NHS number must be refused"
validate "$E2E_TMP/e.json"
[ "$(get e "$T/Patient?identifier=$NHS_SYS%7C9434765910" "$TOKEN")" = 400 ] || fail "bad NHS number"
validate "$E2E_TMP/e.json"
pass "tablet endpoint unlocked: the active plan by NHS number, valid FHIR; drafts never served"

# every read in the device's view log, under the app and the unlocked user
expect_exit 0 agent "$TABLET" --json audit
jq -e --arg a "$A" '[.entries[] | select(.action == "fhir:ambulance-epr" and .plan_id == $a and .user == "tablet-user")] | length >= 4' \
  "$E2E_TMP/last.out" >/dev/null || fail "app reads not in the view log: $(last_out | head -c 600)"
jq -e --arg n $NHS_D '[.entries[] | select(.action == "fhir:ambulance-epr" and .identifier == $n)] | length == 1' \
  "$E2E_TMP/last.out" >/dev/null || fail "a miss is not in the view log"
expect_exit 0 agent "$TABLET" audit --verify

# locking stops the endpoint at once
SESSION_CSRF=$(curl -s -b "$JAR" "http://127.0.0.1:$PORT/" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//; s/"$//')
curl -s -b "$JAR" -o /dev/null -H "Origin: http://127.0.0.1:$PORT" --data-urlencode "csrf=$SESSION_CSRF" "http://127.0.0.1:$PORT/lock"
[ "$(get e "$CP" "$TOKEN")" = 423 ] || fail "still serving after Lock"
jq -e '.resourceType == "OperationOutcome" and (.entry == null)' "$E2E_TMP/e.json" >/dev/null || fail "locked answer after Lock"
for u in "$T/Patient?identifier=$NHS_SYS%7C$NHS_A" "$T/Flag?patient.identifier=$NHS_SYS%7C$NHS_A" "$T/CarePlan/$A" "$T/Patient/$A-pat"; do
  [ "$(get e "$u" "$TOKEN")" = 423 ] || fail "served while locked: $u"
  grep -q "$NHS_A\|Okafor" "$E2E_TMP/e.json" && fail "patient data in a locked answer"
  validate "$E2E_TMP/e.json"
done
# a removed app is refused from the next request on (checked while locked: 401 before 423)
expect_exit 0 agent "$TABLET" app remove ambulance-epr
[ "$(get e "$CP" "$TOKEN")" = 401 ] || fail "a removed app's token still works"
expect_exit 0 agent "$TABLET" --json app list
[ "$(jq length "$E2E_TMP/last.out")" = 0 ] || fail "app list after remove"
kill "$PAGE_PID"; wait "$PAGE_PID" 2>/dev/null || true
grep -q "$NHS_A" "$E2E_TMP/page.log" && fail "the page's log names an NHS number"

start_hub "${HUB_PORT}"
expect_exit 0 agent "$TABLET" sync
expect_exit 0 hub --json audit "$NHS_A"
jq -e '[.[] | select(.action == "fhir:ambulance-epr" and .device == "tablet")] | length >= 4' "$E2E_TMP/last.out" >/dev/null \
  || fail "the tablet's app reads did not reach the hub's audit"
# and, as AuditEvents, to a client registered with --scope audit
expect_exit 0 hub --json client add privacy-office --scope audit
TOKEN_AUD=$(jget .token)
curl -s --cacert "$CA" -o "$E2E_TMP/ae.json" -H "Authorization: Bearer $TOKEN_AUD" \
  "$HUB_URL/fhir/R4/AuditEvent?patient.identifier=$NHS_SYS%7C$NHS_A&_count=100"
validate "$E2E_TMP/ae.json"
jq -e '[.entry[].resource | select(.type.code == "110110" and (.subtype | any(.code == "fhir:ambulance-epr"))
      and .agent[0].who.display == "tablet-user" and .agent[1].who.display == "tablet")] | length >= 4' "$E2E_TMP/ae.json" >/dev/null \
  || fail "the tablet's app reads are not AuditEvents naming the app, the user and the device"
pass "tablet app reads in the device's view log and in cmc-hub audit; Lock stops the endpoint"
