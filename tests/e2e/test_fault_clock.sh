#!/usr/bin/env bash
# Clock skew (H-11, H-10), with libfaketime preloaded into single processes:
#   - a device clock off by an hour: the hub's 401 "clock" is reported as a clock problem;
#   - a device clock years ahead or days behind: the hub's certificate looks expired or not
#     yet valid, and the agent says the device clock is wrong (not "TLS failed");
#   - nothing changes in the replica on any of these;
#   - ordering does not follow wall clocks: a plan approved at the hub with its clock wound
#     back 30 days still reaches a device (itself a few minutes fast) as the newest change;
#   - the offline lease: 15 days after the last sync (lease 14 days) `lookup` is locked
#     (exit 4, naming the last sync date), and winding the clock back does not reopen it.
. "$(dirname "$0")/lib.sh"

FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is not installed (apt: faketime; scripts/install-deps.sh)"
skewed() { local off=$1; shift; LD_PRELOAD="$FAKETIME_LIB" FAKETIME="$off" "$@"; }

hub_init
hub seed --plans 400 --seed 3 >/dev/null
hub user add gp1 --role gp >/dev/null
start_hub
DEV="$E2E_TMP/dev"
new_device "$DEV" crew all urgent_care urgent_care
expect_exit 0 agent "$DEV" sync
state() { agent "$DEV" status --json | jq -c '[.cursor, .plans_visible]'; }
BEFORE=$(state)

check_clock_refusal() {
  local off=$1 want=$2
  set +e; skewed "$off" "$AGENT" --dir "$DEV" sync >"$E2E_TMP/last.out" 2>"$E2E_TMP/last.err"; local rc=$?; set -e
  [ "$rc" -eq 1 ] || fail "[$off] expected exit 1, got $rc: $(last_err)"
  [ "$(wc -l <"$E2E_TMP/last.err")" -eq 1 ] || fail "[$off] one error line expected: $(last_err)"
  last_err | grep -qiE "$want" || fail "[$off] the error should blame the device clock: $(last_err)"
  [ "$(state)" = "$BEFORE" ] || fail "[$off] the replica changed"
  pass "[clock $off] $(last_err)"
}
check_clock_refusal "+3600s" "clock is wrong by"          # the hub's 300 s window
check_clock_refusal "+400d" "device clock looks wrong"    # certificate expired, for the device
check_clock_refusal "-3d" "device clock looks wrong"      # certificate not yet valid

# ordering: approve a plan with the hub's wall clock 30 days back; a device a few minutes fast still gets it
AWAIT_NHS=$(hub --json plan list --status awaiting_approval | jq -r '.[0].nhs_number')
[ -n "$AWAIT_NHS" ] && [ "$AWAIT_NHS" != null ] || fail "no plan awaiting approval in the seed"
expect_exit 3 agent "$DEV" lookup "$AWAIT_NHS"
skewed "-30d" "$HUB" --dir "$HUB_DIR" plan approve "$AWAIT_NHS" --as gp1 >/dev/null || fail "approve under a skewed clock"
expect_exit 0 skewed "+200s" "$AGENT" --dir "$DEV" sync --json
[ "$(jget .puts)" -ge 1 ] || fail "the plan approved under a wound-back hub clock did not arrive: $(last_out)"
expect_exit 0 agent "$DEV" lookup "$AWAIT_NHS"
pass "ordering follows the change log, not wall clocks"

# the offline lease (14 days by default)
NHS=$(agent "$DEV" list --json | jq -r '.plans[0].nhs_number')
expect_exit 0 agent "$DEV" lookup "$NHS"
SYNC_DATE=$(date -u +%Y-%m-%d)
expect_exit 4 skewed "+15d" "$AGENT" --dir "$DEV" lookup "$NHS"
last_err | grep -q "$SYNC_DATE" || fail "the lease lock should name the last sync date ($SYNC_DATE): $(last_err)"
pass "lease passed: $(last_err)"
expect_exit 4 agent "$DEV" lookup "$NHS"
pass "winding the clock back does not reopen an expired lease: $(last_err)"
expect_exit 0 agent "$DEV" sync
expect_exit 0 agent "$DEV" lookup "$NHS"
pass "a sync at the right time unlocks the replica again"
