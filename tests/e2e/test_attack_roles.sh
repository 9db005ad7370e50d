#!/usr/bin/env bash
# A curious user with a lower role on a shared clinician laptop, with real processes: the
# urgent-care user's PIN unwraps their own key slot, and with it they open the replica and
# try to act as the clinicians.
#   - an edit made by the clinician nurse-jones is pushed and the hub's history says
#     "push by nurse-jones on laptop";
#   - a push made by hand with the device's own signing key (read from the replica) is
#     refused: naming nobody, signed by the urgent-care user, or claiming to be nurse-jones
#     with the wrong key; nothing is stored;
#   - the hub's history shows no version the urgent-care user made.
. "$(dirname "$0")/lib.sh"

SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/../shared}
EXAMPLE="$SHARED/examples/plan.json"
[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"
FORGE="$BUILD/tests/tools/forge_push"
[ -x "$FORGE" ] || fail "no $FORGE (make build/tests/tools/forge_push)"
TEAM=peckham-district-nursing
NHS_A=9434765919
ID_A=7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11
UC_PIN=crew-smith-2468

jq --arg nhs $NHS_A --arg id $ID_A '.nhs_number = $nhs | .plan_id = $id' "$EXAMPLE" >"$E2E_TMP/plan-a.json"
hub_init
hub user add gp1 --role gp >/dev/null
hub user add nurse1 --role clinician >/dev/null
A=$(hub plan import "$E2E_TMP/plan-a.json" --as nurse1 | tail -n 1)
hub plan submit "$A" --as nurse1 >/dev/null
hub plan approve "$A" --as gp1 >/dev/null
hub caseload add $TEAM $NHS_A >/dev/null
start_hub

# The shared laptop: a clinician device with nurse-jones (clinician) and crew-smith (urgent care).
LAPTOP="$E2E_TMP/laptop"
code=$(hub device add laptop --scope "team:$TEAM" --role clinician | tail -n 1)
expect_exit 0 agent "$LAPTOP" init --user nurse-jones --role clinician
expect_exit 0 agent "$LAPTOP" enroll --hub "$HUB_URL" --code "$code" --ca "$CA" --name laptop
printf '%s\n' "$UC_PIN" >"$E2E_TMP/uc-pin"; chmod 600 "$E2E_TMP/uc-pin"
expect_exit 0 agent "$LAPTOP" user add crew-smith --role urgent_care --new-pin-file "$E2E_TMP/uc-pin" --user nurse-jones
expect_exit 0 agent "$LAPTOP" sync --user nurse-jones

# ---- a person on every edit ------------------------------------------------------------------
echo '{"set": {"prognosis": "days to weeks"}}' >"$E2E_TMP/edit.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/edit.json" --user nurse-jones
expect_exit 0 agent "$LAPTOP" sync --json --user nurse-jones
[ "$(jget .pushed)" -eq 1 ] || fail "nurse-jones's edit was not pushed"
expect_exit 0 hub plan history "$A"
last_out | grep -q "push by nurse-jones on laptop" || fail "the history does not name the person: $(last_out)"
pass "nurse-jones's edit reached the hub as 'push by nurse-jones on laptop'"

# ---- hand-made pushes by the urgent-care user ------------------------------------------------
base=$(hub plan show "$A" --json | jq -r .version)
versions_before=$(hub plan history "$A" | grep -c . || true)
forge() {
  set +e
  CMC_USER=crew-smith CMC_PIN=$UC_PIN "$FORGE" "$LAPTOP" $ID_A "$base" \
    '{"set": {"resuscitation.form_location": "Nowhere"}}' "$1" >"$E2E_TMP/forge.out" 2>&1
  local rc=$?
  set -e
  [ $rc -eq 1 ] || fail "a hand-made push ($1) was not refused by the hub (exit $rc): $(cat "$E2E_TMP/forge.out")"
  grep -q "^403 " "$E2E_TMP/forge.out" || fail "a hand-made push ($1): not a 403: $(cat "$E2E_TMP/forge.out")"
}
forge none
grep -q "names no user" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge self
grep -q "only a clinician" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge as:nurse-jones
grep -q "does not verify" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge as:dr-nobody
[ "$(hub plan history "$A" | grep -c . || true)" = "$versions_before" ] || fail "a refused push left a version"
hub plan history "$A" | grep -q crew-smith && fail "the history names crew-smith"
pass "pushes signed with the device key alone, by the urgent-care user, or forged as nurse-jones are refused (403), nothing stored"
