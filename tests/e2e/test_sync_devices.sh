#!/usr/bin/env bash
# End to end, real processes on 127.0.0.1 over HTTPS: an ambulance tablet (region scope, urgent
# care) and a nurse's laptop (team scope, clinician) enroll and sync with a real hub.
#   - a plan approved on the hub is found on the tablet with the hub stopped;
#   - drafts and plans awaiting approval never reach the tablet;
#   - an offline edit on the laptop is pushed, becomes a draft, is approved, reaches the tablet;
#   - concurrent edits to one field conflict and `resolve` settles them; different fields merge;
#   - consent withdrawal purges the plan on both devices, from every file, WAL included;
#   - leaving the team's caseload purges the plan from the laptop only.
. "$(dirname "$0")/lib.sh"

[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"

REGION=south-east-london
TEAM=peckham-district-nursing
NHS_A=9434765919   # published, on the team's caseload
NHS_B=4010232137   # stays a draft
NHS_C=4010232145   # awaiting approval
NHS_D=4857773007   # published, region only (not on the caseload)

# plan_file NHS ID MARKER: the example plan with its own identity and a marker in the guidance.
plan_file() {
  local nhs=$1 id=$2 marker=$3 f="$E2E_TMP/plan-$1.json"
  jq --arg nhs "$nhs" --arg id "$id" --arg m "$marker" \
    '.nhs_number = $nhs | .plan_id = $id | .anticipated_problems[0].guidance = ("Sit upright. " + $m)' \
    "$EXAMPLE" >"$f"
  echo "$f"
}

hub_init_users
hub user add admin1 --role admin >/dev/null

A=$(hub plan import "$(plan_file $NHS_A 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 MARKER-ALPHA)" --as nurse1 | tail -n 1)
B=$(hub plan import "$(plan_file $NHS_B 11111111-2222-4333-8444-555555555555 MARKER-BRAVO)" --as nurse1 | tail -n 1)
C=$(hub plan import "$(plan_file $NHS_C 22222222-3333-4444-8555-666666666666 MARKER-CHARLIE)" --as nurse1 | tail -n 1)
D=$(hub plan import "$(plan_file $NHS_D 33333333-4444-4555-8666-777777777777 MARKER-DELTA)" --as nurse1 | tail -n 1)
for p in "$A" "$C" "$D"; do hub plan submit "$p" --as nurse1 >/dev/null; done
expect_exit 2 hub plan approve "$A" --as admin1
expect_exit 0 hub plan approve "$A" --as gp1
expect_exit 0 hub plan approve "$D" --as gp1
hub caseload add $TEAM $NHS_A >/dev/null
hub caseload add $TEAM $NHS_B >/dev/null
pass "hub: plans imported, admin refused at approval, two published"

start_hub
PORT=$HUB_PORT
enroll_tablet_and_laptop
expect_exit 0 agent "$TABLET" sync --json
[ "$(jget .puts)" -eq 2 ] || fail "tablet should receive the two published plans, got $(jget .puts)"
expect_exit 0 agent "$LAPTOP" sync
pass "tablet and laptop enrolled and synced"

# ---- offline lookup with no hub at all -----------------------------------------------------
stop_hub
expect_exit 0 agent "$TABLET" lookup $NHS_A
last_out | grep -q "DNACPR - do NOT attempt CPR" || fail "the card does not show the CPR decision"
last_out | grep -q "PLAN STATUS: PUBLISHED" || fail "the card banner does not say published"
expect_exit 3 agent "$TABLET" lookup $NHS_B
expect_exit 3 agent "$TABLET" lookup $NHS_C
in_replica "$TABLET" MARKER-ALPHA           # the scanner sees plaintext when it is there
not_in_replica "$TABLET" MARKER-BRAVO
not_in_replica "$TABLET" MARKER-CHARLIE
no_file_contains "$TABLET" MARKER-ALPHA     # and nothing is readable without the key
expect_exit 0 agent "$LAPTOP" lookup $NHS_B     # the team's draft, for a clinician
last_out | grep -q "DRAFT" || fail "the laptop should show the draft as a draft"
expect_exit 3 agent "$LAPTOP" lookup $NHS_D     # not on the caseload
pass "offline lookup works with the hub stopped; drafts never reach the tablet"

# ---- an offline edit travels: laptop -> hub draft -> approval -> tablet ----------------------
echo '{"set": {"prognosis": "days to weeks"}}' >"$E2E_TMP/edit1.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/edit1.json"
expect_exit 2 agent "$TABLET" edit $NHS_A --file "$E2E_TMP/edit1.json"
expect_exit 0 agent "$LAPTOP" lookup $NHS_A --json
[ "$(jget .plan.prognosis)" = "days to weeks" ] || fail "the laptop should show its pending edit"
start_hub "$PORT"
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .pushed)" -eq 1 ] || fail "the laptop should push one edit"
expect_exit 0 hub plan show "$A" --json
last_out | grep -q "awaiting_approval" || fail "the pushed edit should be awaiting approval on the hub"
expect_exit 0 agent "$TABLET" sync
expect_exit 0 agent "$TABLET" lookup $NHS_A --json
[ "$(jget .plan.prognosis)" = "weeks to months" ] || fail "the tablet must keep the published version until approval"
expect_exit 0 hub plan approve "$A" --as gp1
expect_exit 0 agent "$TABLET" sync
expect_exit 0 agent "$TABLET" lookup $NHS_A --json
[ "$(jget .plan.prognosis)" = "days to weeks" ] || fail "the approved edit should reach the tablet"
pass "offline edit pushed, approved on the hub, delivered to the tablet"

# ---- concurrent edits: same field conflicts, different fields merge -------------------------
expect_exit 0 agent "$LAPTOP" sync
echo '{"set": {"resuscitation.decision": "for_cpr"}}' >"$E2E_TMP/hub-edit.json"
echo '{"set": {"resuscitation.decision": "not_yet_discussed"}}' >"$E2E_TMP/laptop-edit.json"
expect_exit 0 hub plan edit "$A" --as nurse1 --file "$E2E_TMP/hub-edit.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/laptop-edit.json"
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .conflicts)" -eq 1 ] || fail "the same field edited on both sides should conflict"
[ "$(jget .pushed)" -eq 0 ] || fail "nothing may be pushed for a plan with an open conflict"
expect_exit 0 agent "$LAPTOP" conflicts --json
[ "$(jget '.conflicts[0].field')" = "resuscitation.decision" ] || fail "the conflict should name the CPR decision"
[ "$(jget '.conflicts[0].local')" = "not_yet_discussed" ] || fail "the conflict should show the local value"
[ "$(jget '.conflicts[0].remote')" = "for_cpr" ] || fail "the conflict should show the hub's value"
expect_exit 0 agent "$LAPTOP" resolve $NHS_A resuscitation.decision --keep local
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .pushed)" -eq 1 ] || fail "the settled edit should be pushed"
expect_exit 0 hub plan show "$A" --json
last_out | grep -q "not_yet_discussed" || fail "the hub should hold the clinician's settled value"
pass "same-field edits conflict and resolve settles them"

echo '{"set": {"adrt.location": "Copy in the red folder"}}' >"$E2E_TMP/hub-edit2.json"
echo '{"set": {"what_matters_to_me": "Being at home with Biscuit"}}' >"$E2E_TMP/laptop-edit2.json"
expect_exit 0 agent "$LAPTOP" sync
expect_exit 0 hub plan edit "$A" --as nurse1 --file "$E2E_TMP/hub-edit2.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/laptop-edit2.json"
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .conflicts)" -eq 0 ] || fail "edits to different fields must merge without a conflict"
[ "$(jget .pushed)" -eq 1 ] || fail "the merged edit should be pushed"
expect_exit 0 hub plan show "$A" --json
last_out | grep -q "Copy in the red folder" || fail "the hub's edit should survive the merge"
last_out | grep -q "Being at home with Biscuit" || fail "the laptop's edit should survive the merge"
pass "edits to different fields merge"

# ---- leaving the caseload purges from the laptop only ---------------------------------------
expect_exit 0 agent "$LAPTOP" sync
expect_exit 0 agent "$LAPTOP" lookup $NHS_B
hub caseload remove $TEAM $NHS_B >/dev/null
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .purges)" -ge 1 ] || fail "leaving the caseload should purge the plan from the laptop"
expect_exit 3 agent "$LAPTOP" lookup $NHS_B
not_in_replica "$LAPTOP" MARKER-BRAVO
pass "leaving the caseload purges the plan from the laptop"

# ---- consent withdrawal purges everywhere ---------------------------------------------------
expect_exit 0 agent "$TABLET" sync
in_replica "$TABLET" $NHS_A
in_replica "$LAPTOP" MARKER-ALPHA
expect_exit 0 hub plan withdraw-consent "$A" --as nurse1 --reason "patient request"
expect_exit 0 agent "$TABLET" sync --json
[ "$(jget .purges)" -eq 1 ] || fail "the tablet should purge the withdrawn plan"
expect_exit 0 agent "$LAPTOP" sync --json
[ "$(jget .purges)" -ge 1 ] || fail "the laptop should purge the withdrawn plan"
stop_hub
for dev in "$TABLET" "$LAPTOP"; do
  not_in_replica "$dev" $NHS_A
  not_in_replica "$dev" MARKER-ALPHA
  no_file_contains "$dev" $NHS_A
done
# (looked up afterwards: a miss, and the audit log records that someone looked)
expect_exit 3 agent "$TABLET" lookup $NHS_A
expect_exit 3 agent "$LAPTOP" lookup $NHS_A
expect_exit 0 agent "$TABLET" lookup $NHS_D   # other plans untouched
pass "consent withdrawal leaves no copy on either device (WAL included)"
