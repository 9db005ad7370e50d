#!/usr/bin/env bash
# End to end, a fleet on mixed versions (docs/PROTOCOL.md, "Mixed versions"): the previous
# release's agent, built from this repository's history, syncs from the new hub beside a new
# agent.
#   - the old agent is served a second-edition plan's first-edition content, with the note
#     "this plan has content this device cannot show - update the agent" on its card; a
#     first-edition plan reaches it untouched;
#   - a new version reaches it the same way;
#   - an old clinician device's edit, which names no person, is refused with the reason;
#   - the new agent shows everything, and no note.
# Skips (exit 77) when the previous release is not in the repository's history.
. "$(dirname "$0")/lib.sh"

PREVIOUS=8789910   # the previous release
EXAMPLE1="$SHARED/examples/plan.json"
EXAMPLE2="$ROOT/docs/examples/plan-second-edition.json"
[ -f "$EXAMPLE1" ] || fail "no example plan at $EXAMPLE1"
[ -f "$EXAMPLE2" ] || fail "no second-edition example at $EXAMPLE2"

if ! git -C "$ROOT" cat-file -e "$PREVIOUS^{commit}" 2>/dev/null; then
  echo "skip: the previous release ($PREVIOUS) is not in this repository's history (a shallow clone or an export)"
  exit 77
fi

# ---- the previous release's agent, built in its own tree ------------------------------------
OLD_SRC="$E2E_TMP/previous"
mkdir -p "$OLD_SRC"
git -C "$ROOT" archive "$PREVIOUS" | tar -x -C "$OLD_SRC" || fail "git archive $PREVIOUS"
make -C "$OLD_SRC" -j2 BUILD=build build/cmc-agent >"$E2E_TMP/old-build.log" 2>&1 ||
  { tail -n 20 "$E2E_TMP/old-build.log" >&2; fail "building the previous release's agent"; }
OLD_AGENT="$OLD_SRC/build/cmc-agent"
old() { local dir=$1; shift; "$OLD_AGENT" --dir "$dir" "$@"; }
pass "the previous release's agent built from $PREVIOUS"

REGION=south-east-london
TEAM=peckham-district-nursing
NHS2=9434765919   # the second-edition example
NHS1=4010232137   # a first-edition plan
NOTE="THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW"
CEILING=$(jq -r .ceiling_of_treatment "$EXAMPLE2")

hub_init_users
jq --arg nhs $NHS1 '.nhs_number = $nhs | .plan_id = "11111111-2222-4333-8444-555555555555"' \
  "$EXAMPLE1" >"$E2E_TMP/plan1.json"
P2=$(hub plan import "$EXAMPLE2" --as nurse1 | tail -n 1)
P1=$(hub plan import "$E2E_TMP/plan1.json" --as nurse1 | tail -n 1)
for p in "$P2" "$P1"; do
  hub plan submit "$p" --as nurse1 >/dev/null
  hub plan approve "$p" --as gp1 >/dev/null
done
hub caseload add $TEAM $NHS2 >/dev/null
start_hub

# ---- the old tablet: first-edition content, with the note, never a refusal -----------------
OLD_TAB="$E2E_TMP/old-tablet"
code=$(hub device add old-tablet --scope "region:$REGION" --role urgent_care | tail -n 1)
old "$OLD_TAB" init --user old-crew --role urgent_care >/dev/null || fail "old agent: init"
old "$OLD_TAB" enroll --hub "$HUB_URL" --code "$code" --ca "$CA" --name old-tablet >/dev/null ||
  fail "old agent: enroll"
expect_exit 0 old "$OLD_TAB" sync --json
[ "$(jget .puts)" -eq 2 ] || fail "the old tablet should receive both plans, got $(jget .puts)"
expect_exit 0 old "$OLD_TAB" lookup $NHS2
last_out | grep -qF "$NOTE" || fail "the old agent's card does not say it cannot show everything"
last_out | grep -q "update the agent" || fail "the old agent's card does not say to update the agent"
last_out | grep -qF "$CEILING" || fail "the old agent's card lost the ceiling of treatment"
last_out | grep -q "DNACPR - do NOT attempt CPR" || fail "the old agent's card lost the CPR decision"
expect_exit 0 old "$OLD_TAB" lookup $NHS2 --json
[ "$(jget '.plan.recommendations // "absent"')" = absent ] || fail "the old agent holds fields it cannot know"
case "$(jget .plan.ceiling_of_treatment)" in
  "[$NOTE"*"$CEILING") ;;
  *) fail "the note is not first in the ceiling: $(jget .plan.ceiling_of_treatment)" ;;
esac
expect_exit 0 old "$OLD_TAB" lookup $NHS1
last_out | grep -qF "$NOTE" && fail "a first-edition plan should reach the old agent untouched"
pass "old agent: the second-edition plan's first-edition content with the note; the first-edition plan untouched"

# ---- a new version reaches it the same way --------------------------------------------------
echo '{"set": {"prognosis": "days to weeks", "recommendations.iv_antibiotics": "not_recommended"}}' \
  >"$E2E_TMP/edit-hub.json"
hub plan edit "$P2" --file "$E2E_TMP/edit-hub.json" --as nurse1 >/dev/null || fail "hub plan edit"
hub plan submit "$P2" --as nurse1 >/dev/null
hub plan approve "$P2" --as gp1 >/dev/null
expect_exit 0 old "$OLD_TAB" sync --json
expect_exit 0 old "$OLD_TAB" lookup $NHS2 --json
[ "$(jget .plan.prognosis)" = "days to weeks" ] || fail "the old tablet did not get the new version"
jget .plan.ceiling_of_treatment | grep -qF "$NOTE" || fail "the new version lost its note"
pass "old agent: a new version arrives, still with the note"

# ---- an old clinician device's edit is refused: it names nobody ------------------------------
# Edits must carry the person who made them and their signature; an agent from before that
# cannot, so the hub refuses its push with a reason, keeps nothing, and the edit waits on
# the device until the agent is updated.
OLD_LAP="$E2E_TMP/old-laptop"
code=$(hub device add old-laptop --scope "team:$TEAM" --role clinician | tail -n 1)
old "$OLD_LAP" init --user old-nurse --role clinician >/dev/null || fail "old agent: init laptop"
old "$OLD_LAP" enroll --hub "$HUB_URL" --code "$code" --ca "$CA" --name old-laptop >/dev/null ||
  fail "old agent: enroll laptop"
expect_exit 0 old "$OLD_LAP" sync
echo '{"set": {"social_support": "Son visits daily"}}' >"$E2E_TMP/edit-old.json"
expect_exit 0 old "$OLD_LAP" edit $NHS2 --file "$E2E_TMP/edit-old.json"
set +e; old "$OLD_LAP" sync >"$E2E_TMP/old-sync.out" 2>"$E2E_TMP/old-sync.err"; rc=$?; set -e
[ $rc -ne 0 ] || fail "the old laptop's unsigned edit was accepted"
grep -q "too old to push edits" "$E2E_TMP/old-sync.err" ||
  fail "the old agent was not told why: $(cat "$E2E_TMP/old-sync.err")"
expect_exit 0 hub plan show "$P2" --json
[ "$(jget .social_support)" != "Son visits daily" ] || fail "the hub took the old laptop's unsigned edit"
[ "$(jget .recommendations.cpr)" = not_recommended ] || fail "the hub's plan lost its recommendations"
pass "old clinician device: its unsigned edit is refused with the reason, nothing changes at the hub"

# ---- the new agent shows everything ---------------------------------------------------------
NEW_TAB="$E2E_TMP/new-tablet"
new_device "$NEW_TAB" new-tablet "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$NEW_TAB" sync --json
[ "$(jget .puts)" -eq 2 ] || fail "the new tablet should receive both plans, got $(jget .puts)"
expect_exit 0 agent "$NEW_TAB" lookup $NHS2
last_out | grep -qF "$NOTE" && fail "the new agent should show everything, with no note"
last_out | grep -qF "$CEILING" || fail "the new agent's card lost the ceiling"
expect_exit 0 agent "$NEW_TAB" lookup $NHS2 --json
[ "$(jget .plan.recommendations.cpr)" = not_recommended ] || fail "the new agent lacks the recommendations"
[ "$(jget .plan.recommendations.iv_antibiotics)" = not_recommended ] || fail "the new agent lacks the new version"
[ "$(jget .plan.ceiling_of_treatment)" = "$CEILING" ] || fail "the new agent's ceiling carries a note"
[ "$(jget .banner.newer_content)" = false ] || fail "the new agent says it cannot show this plan"
pass "new agent: the whole second-edition plan, no note"
echo "PASS test_fleet_versions"
