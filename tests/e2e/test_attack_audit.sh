#!/usr/bin/env bash
# Attack, end to end with real processes: the device's view log changed before upload by
# someone who knows a user's PIN (tests/tools/audit_forge, the PIN from the environment).
#   - the newest entries deleted: `audit --verify` on the device says entries are missing, and
#     at the next sync the hub raises an audit alarm ("gap") that `cmc-hub device list` shows;
#     so it does when every entry not yet uploaded is deleted (nothing left to send);
#   - one entry rewritten (a lookup turned into a list of nothing) with the BLAKE2b chain
#     recomputed and every later entry sealed again with the device's current key: the chain
#     verifies on the device, but the hub's check of the forward-secure seals raises the alarm
#     ("rewrite");
#   - a device whose log is left alone raises none.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
NHS_A=9434765919
FORGE="$BUILD/tests/tools/audit_forge"
[ -x "$FORGE" ] || fail "build the test tools first (make $FORGE)"

hub_init_users
f="$E2E_TMP/plan.json"
jq --arg nhs $NHS_A '.nhs_number = $nhs' "$SHARED/examples/plan.json" >"$f"
A=$(publish_file "$f")
start_hub

alarm_of() { # NAME: the device's audit_alarm ("null" when none)
  expect_exit 0 hub device list --json
  jget ".[] | select(.name == \"$1\") | .audit_alarm"
}
views() { # DIR NAME COUNT: COUNT lookups of plan A
  local i
  for i in $(seq 1 "$3"); do expect_exit 0 agent "$1" lookup $NHS_A --user "$2-user"; done
}

for name in honest trimmed emptied rewritten; do
  new_device "$E2E_TMP/$name" "$name" "region:$REGION" urgent_care urgent_care
  expect_exit 0 agent "$E2E_TMP/$name" sync --user "$name-user"
  views "$E2E_TMP/$name" "$name" 2
  expect_exit 0 agent "$E2E_TMP/$name" sync --user "$name-user"
  [ "$(alarm_of $name)" = null ] || fail "$name: an honest upload raised an alarm: $(last_out)"
done
pass "sealed uploads verify on the hub: no alarm"

# ---- the honest device goes on: still no alarm ----------------------------------------------------
views "$E2E_TMP/honest" honest 3
expect_exit 0 agent "$E2E_TMP/honest" audit --verify --user honest-user
expect_exit 0 agent "$E2E_TMP/honest" sync --user honest-user
[ "$(alarm_of honest)" = null ] || fail "the honest device raised an alarm: $(last_out)"

# ---- trimmed: the two newest views deleted before upload ------------------------------------------
T="$E2E_TMP/trimmed"
views "$T" trimmed 3
CMC_USER=trimmed-user "$FORGE" "$T" trim 2 || fail "audit_forge trim"
expect_exit 1 agent "$T" audit --verify --user trimmed-user
grep -q "missing" "$E2E_TMP/last.err" || fail "audit --verify should say entries are missing: $(last_err)"
expect_exit 0 agent "$T" sync --user trimmed-user
alarm=$(alarm_of trimmed)
case "$alarm" in gap:*) ;; *) fail "the hub should raise a gap alarm for the trimmed log, got: $alarm" ;; esac
expect_exit 0 hub device list
grep -q "AUDIT ALARM" "$E2E_TMP/last.out" || fail "device list should show the alarm: $(last_out)"
pass "a trimmed tail: audit --verify says entries are missing; the hub raises a gap alarm"

# ---- emptied: every view since the last upload deleted (nothing left to send) ------------------
M="$E2E_TMP/emptied"
views "$M" emptied 2
CMC_USER=emptied-user "$FORGE" "$M" trim 2 || fail "audit_forge trim"
expect_exit 1 agent "$M" audit --verify --user emptied-user
expect_exit 0 agent "$M" sync --user emptied-user
alarm=$(alarm_of emptied)
case "$alarm" in gap:*) ;; *) fail "the hub should raise a gap alarm when every unsent entry is gone, got: $alarm" ;; esac
pass "every unsent entry deleted: the device's sealing state goes up alone and the hub raises a gap alarm"

# ---- rewritten: one view turned into a list of nothing, chain recomputed, resealed ----------------
R="$E2E_TMP/rewritten"
views "$R" rewritten 3
expect_exit 0 agent "$R" audit --json --user rewritten-user
seq=$(jget '[.entries[] | select(.action == "lookup")][-2].seq')
[ -n "$seq" ] && [ "$seq" != null ] || fail "no lookup entry to rewrite: $(last_out)"
CMC_USER=rewritten-user "$FORGE" "$R" rewrite "$seq" || fail "audit_forge rewrite"
expect_exit 0 agent "$R" audit --verify --user rewritten-user # the chain itself was recomputed
expect_exit 0 agent "$R" sync --user rewritten-user
alarm=$(alarm_of rewritten)
case "$alarm" in rewrite:*) ;; *) fail "the hub should raise a rewrite alarm, got: $alarm" ;; esac
[ "$(alarm_of honest)" = null ] || fail "the honest device should still have no alarm"
pass "a rewritten entry with its chain recomputed and resealed: the hub raises a rewrite alarm"
