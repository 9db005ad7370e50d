#!/usr/bin/env bash
# Attack, end to end with real processes: a plan edited inside the replica. Someone who knows
# one user's PIN unwraps the replica key (tests/tools/replica_key, the PIN from the
# environment) and opens the replica in the `sqlcipher` shell, the key fed on its stdin. They
# flip a DNACPR decision to FOR CPR in the stored plan's bytes. The device must not show it:
#   - lookup and show refuse with "this plan failed its integrity check - do not rely on it;
#     ask the hub" (exit 1) and print nothing of the plan; list and search leave it out;
#   - verify names the plan (exit 1);
#   - the next sync drops the altered version and fetches the plan again: the DNACPR is back
#     and verify passes.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
NHS_A=9434765919
NHS_B=4010232137
command -v sqlcipher >/dev/null || fail "the sqlcipher shell is needed (scripts/install-deps.sh)"
KEYTOOL="$BUILD/tests/tools/replica_key"
[ -x "$KEYTOOL" ] || fail "build the test tools first (make $KEYTOOL)"

hub_init_users
A=$(publish_plan $NHS_A 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11)
publish_plan $NHS_B 11111111-2222-4333-8444-555555555555 >/dev/null
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync --user tablet-user
expect_exit 0 agent "$TABLET" lookup $NHS_A --json --user tablet-user
grep -qi dnacpr "$E2E_TMP/last.out" || fail "the plan should say DNACPR before the attack: $(last_out)"
expect_exit 0 agent "$TABLET" verify --user tablet-user

# ---- the attack: in the stored msgpack, resuscitation.decision (wire id 19 = 0x13) goes from
# 2 (dnacpr) to 1 (for_cpr); the next key is 20 (0x14), decided_at, a 10-character date (0xaa)
sql() { { CMC_USER=tablet-user "$KEYTOOL" "$TABLET"; cat; } | sqlcipher "$TABLET/replica.db"; }
changed=$(sql <<SQL | tail -n 1
UPDATE plan_versions SET body = unhex(replace(hex(body), '130214AA', '130114AA'))
  WHERE plan_id = '$A';
SELECT changes();
SQL
)
[ "$changed" = 1 ] || fail "the sqlcipher shell should have changed one row (got '$changed')"
[ "$(sql <<<"SELECT instr(hex(body), '130114AA') % 2 FROM plan_versions WHERE plan_id = '$A';" |
   tail -n 1)" = 1 ] || fail "the stored bytes should now say for_cpr"

MSG='this plan failed its integrity check - do not rely on it; ask the hub'
expect_exit 1 agent "$TABLET" lookup $NHS_A --user tablet-user
grep -qF "$MSG" "$E2E_TMP/last.err" || fail "lookup should say the plan failed its check: $(last_err)"
grep -qi 'cpr' "$E2E_TMP/last.out" && fail "lookup printed the altered plan: $(last_out)"
expect_exit 1 agent "$TABLET" show "$A" --user tablet-user
grep -qF "$MSG" "$E2E_TMP/last.err" || fail "show should say the plan failed its check: $(last_err)"
[ ! -s "$E2E_TMP/last.out" ] || fail "show printed something of the altered plan: $(last_out)"
expect_exit 0 agent "$TABLET" list --json --user tablet-user
jget '.plans[].nhs_number' | grep -qx $NHS_A && fail "list shows the altered plan"
jget '.plans[].nhs_number' | grep -qx $NHS_B || fail "list should still show the other plan: $(last_out)"
expect_exit 0 agent "$TABLET" lookup $NHS_B --user tablet-user
pass "the altered plan is refused with the integrity message (exit 1); other plans still show"

expect_exit 1 agent "$TABLET" verify --user tablet-user
grep -q "plan $A version [0-9]* failed its integrity check" "$E2E_TMP/last.out" ||
  fail "verify should name the altered plan: $(last_out) $(last_err)"
expect_exit 1 agent "$TABLET" verify --json --user tablet-user
[ "$(jget '.failed | length')" = 1 ] || fail "verify --json should list one failure: $(last_out)"
pass "verify reports the mismatch"

# ---- the next sync repairs it -------------------------------------------------------------------
expect_exit 0 agent "$TABLET" sync --user tablet-user
expect_exit 0 agent "$TABLET" lookup $NHS_A --json --user tablet-user
grep -qi dnacpr "$E2E_TMP/last.out" || fail "after the sync the plan should say DNACPR again: $(last_out)"
grep -q for_cpr "$E2E_TMP/last.out" && fail "after the sync the altered decision is still shown"
expect_exit 0 agent "$TABLET" verify --user tablet-user
pass "the next sync fetched the plan again: DNACPR shown, verify passes"
