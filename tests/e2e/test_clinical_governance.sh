#!/usr/bin/env bash
# Clinical governance through the real binaries (docs/CLINICAL-RULES.md):
#   - a contradictory plan cannot be submitted (exit 2, the error naming fields and rule,
#     never the patient);
#   - approval sets the review date (12 months, or an earlier --next; later is refused);
#     `plan review` publishes "reviewed, no changes"; `plan list --review-due-before`;
#   - consent: an admin, a missing --reason, another patient's account are refused; the
#     patient's own account withdraws; the tablet purges the plan; renewed consent is a draft
#     the tablet does not get until a GP approves it.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
ED2="$(dirname "$0")/../../docs/examples/plan-second-edition.json"
NHS=9434765919
TODAY=$(date -u +%F)
IN_A_YEAR=$(date -u -d "$TODAY + 365 days" +%F)
NEXT=$(date -u -d "$TODAY + 90 days" +%F)

hub_init_users
hub user add admin1 --role admin >/dev/null
expect_exit 2 hub user add maggie --role patient            # a patient account needs its NHS number
expect_exit 0 hub user add maggie --role patient --nhs "943 476 5919"
expect_exit 0 hub user add other --role patient --nhs 4010232137

# ---- rules at submission --------------------------------------------------------------------
jq '.plan_id = "99999999-2222-4333-8444-555555555555" | .nhs_number = "4010232153"
    | .resuscitation.decision = "for_cpr"' "$ED2" >"$E2E_TMP/contradiction.json"
expect_exit 0 hub plan import "$E2E_TMP/contradiction.json" --as nurse1
expect_exit 2 hub plan submit 4010232153 --as nurse1
last_err | grep -q "resuscitation.decision" || fail "the refusal should name the field: $(last_err)"
last_err | grep -q "rule cpr-recommendation" || fail "the refusal should name the rule: $(last_err)"
last_err | grep -q "Okafor" && fail "the refusal quotes patient data"
pass "a FOR CPR decision over a CPR 'not recommended' cannot be submitted (exit 2)"

# ---- review that renews ---------------------------------------------------------------------
expect_exit 0 hub plan import "$ED2" --as nurse1
expect_exit 0 hub plan submit $NHS --as nurse1
expect_exit 2 hub plan approve $NHS --as gp1 --next "$(date -u -d "$TODAY + 400 days" +%F)"
expect_exit 0 hub plan approve $NHS --as gp1
expect_exit 0 hub --json plan show $NHS
[ "$(jget .review_due)" = "$IN_A_YEAR" ] || fail "approval should set review due $IN_A_YEAR, got $(jget .review_due)"
expect_exit 0 hub --json plan list --review-due-before "$(date -u -d "$TODAY + 366 days" +%F)"
[ "$(jget 'length')" -eq 1 ] || fail "one plan due within 366 days expected: $(last_out)"
expect_exit 2 hub plan review $NHS --as nurse1
expect_exit 0 hub --json plan review $NHS --as gp1 --next "$NEXT"
[ "$(jget .status)" = published ] && [ "$(jget .review_due)" = "$NEXT" ] || fail "review: $(last_out)"
expect_exit 0 hub --json plan list --review-due-before "$NEXT"
[ "$(jget 'length')" -eq 0 ] || fail "nothing is due before $NEXT after the review: $(last_out)"
expect_exit 0 hub plan history $NHS
last_out | grep -q "review" || fail "the history should show the review"
pass "approval and review set the review date; the practice list follows it"

# ---- consent governance, seen from a tablet ---------------------------------------------------
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync
expect_exit 0 agent "$TABLET" lookup $NHS

expect_exit 2 hub plan withdraw-consent $NHS --as admin1 --reason "asked at reception"
expect_exit 2 hub plan withdraw-consent $NHS --as nurse1
last_err | grep -q -- "--reason" || fail "the refusal should ask for --reason: $(last_err)"
expect_exit 2 hub plan withdraw-consent $NHS --as other --reason "not mine"
expect_exit 2 hub plan show $NHS --as other
expect_exit 0 hub plan show $NHS --as maggie
expect_exit 0 hub --json plan withdraw-consent $NHS --as maggie --reason "I want to think again"
[ "$(jget .consent_withdrawn)" = true ] || fail "consent not withdrawn"
expect_exit 0 agent "$TABLET" sync
expect_exit 3 agent "$TABLET" lookup $NHS
pass "only the patient's own account (or a clinician or GP) withdraws, with a reason; the tablet purged the plan"

expect_exit 2 hub plan reinstate-consent $NHS --as admin1 --reason "renewed"
expect_exit 0 hub --json plan reinstate-consent $NHS --as nurse1 --reason "consent renewed at home visit"
[ "$(jget .status)" = draft ] && [ "$(jget .consent_withdrawn)" = false ] || fail "reinstate: $(last_out)"
expect_exit 0 agent "$TABLET" sync
expect_exit 3 agent "$TABLET" lookup $NHS
expect_exit 0 hub plan submit $NHS --as nurse1
expect_exit 0 hub plan approve $NHS --as gp1
expect_exit 0 agent "$TABLET" sync
expect_exit 0 agent "$TABLET" lookup $NHS
stop_hub
pass "renewed consent reaches the tablet only once a GP has approved it"
