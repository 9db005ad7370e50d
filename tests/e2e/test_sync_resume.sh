#!/usr/bin/env bash
# End to end: a sync cut off part-way resumes without loss or duplication.
#   - the hub stopped mid-pull: the agent fails cleanly, keeps what it committed, and the next
#     sync completes from the committed cursor;
#   - the agent killed (SIGKILL) in the middle of applying a bundle: the replica passes its
#     integrity check, nothing of that bundle is there, and the next sync completes;
#   - the result equals the replica of a device that synced without interruption;
#   - a revoked device: the hub's 401 stops the sync and leaves the data alone;
#   - plain http to a non-loopback hub is refused before anything connects.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
hub_init
hub seed --plans 4000 --seed 7 >/dev/null
start_hub
PORT=$HUB_PORT

CLEAN="$E2E_TMP/clean"
CUT="$E2E_TMP/cut"
KILLED="$E2E_TMP/killed"
new_device "$CLEAN" clean "region:$REGION" urgent_care urgent_care
new_device "$CUT" cut "region:$REGION" urgent_care urgent_care
new_device "$KILLED" killed "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$CLEAN" sync --json
TOTAL=$(jget .puts)
[ "$TOTAL" -gt 300 ] || fail "the region should hold hundreds of plans, got $TOTAL"

# snapshot of a device: sorted plan ids with versions
snapshot() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort; }

# ---- the hub stops mid-pull ------------------------------------------------------------------
sync_under_way "$CUT" || true # a sync that finished first is caught below
kill_hub
set +e; wait $SYNC_PID; rc=$?; set -e
[ "$rc" -ne 0 ] || fail "the interrupted sync should fail (it finished before the hub stopped?)"
grep -q "cmc-agent:" "$E2E_TMP/cut.err" || fail "the interrupted sync should say why in one line"
[ "$(wc -l <"$E2E_TMP/cut.err")" -eq 1 ] || fail "one error line expected, got: $(cat "$E2E_TMP/cut.err")"
expect_exit 0 agent "$CUT" verify
expect_exit 0 agent "$CUT" status --json
partial=$(jget .plans_visible)
[ "$partial" -gt 0 ] && [ "$partial" -lt "$TOTAL" ] || fail "expected a partial replica, got $partial of $TOTAL"
pass "hub stopped mid-pull: $partial of $TOTAL plans committed, replica intact"

start_hub "$PORT"
expect_exit 0 agent "$CUT" sync --json
[ "$(jget .puts)" -eq $((TOTAL - partial)) ] || fail "resume should fetch exactly the rest: $(jget .puts) vs $((TOTAL - partial))"
[ "$(snapshot "$CUT")" = "$(snapshot "$CLEAN")" ] || fail "the resumed replica differs from an uninterrupted one"
pass "resumed from the committed cursor without loss or duplication"

# ---- the agent killed while applying -------------------------------------------------------
set +e
CMC_PAGE_BUDGET=16384 CMC_TEST_CRASH_POINT=apply:mid-ops agent "$KILLED" sync >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 137 ] || fail "the agent should have been killed at the crash point (exit $rc)"
expect_exit 0 agent "$KILLED" verify
expect_exit 0 agent "$KILLED" status --json
[ "$(jget .cursor)" -eq 0 ] && [ "$(jget .plans_visible)" -eq 0 ] || fail "a half-applied bundle left traces"
set +e
CMC_PAGE_BUDGET=16384 CMC_TEST_CRASH_POINT=apply:after-commit agent "$KILLED" sync >/dev/null 2>&1
set -e
expect_exit 0 agent "$KILLED" status --json
first=$(jget .plans_visible)
[ "$first" -gt 0 ] || fail "the first bundle committed before the kill should be kept"
expect_exit 0 agent "$KILLED" sync
[ "$(snapshot "$KILLED")" = "$(snapshot "$CLEAN")" ] || fail "after kill -9 and resume the replica differs"
pass "kill -9 mid-apply leaves no part-applied bundle; the next sync completes"

# ---- a revoked device stops syncing and keeps its data ---------------------------------------
NHS=$(agent "$CUT" list --json | jq -r '.plans[0].nhs_number')
DEV=$(hub device list --json | jq -r '.[] | select(.name == "cut") | .device_id')
[ -n "$DEV" ] || fail "cannot find the device id of 'cut'"
hub device revoke "$DEV" >/dev/null
expect_exit 1 agent "$CUT" sync
last_err | grep -qi "hub" || fail "a refused sync should say the hub refused it: $(last_err)"
expect_exit 0 agent "$CUT" lookup "$NHS"
expect_exit 0 agent "$CUT" verify
pass "a 401 stops the sync and leaves the data alone"

# ---- plain http only to loopback -------------------------------------------------------------
PLAIN="$E2E_TMP/plain"
agent "$PLAIN" init --user crew --role urgent_care >/dev/null
expect_exit 2 agent "$PLAIN" enroll --hub http://hub.example.invalid:8080 --code ABCD-EFGH-IJKL-MNOP
last_err | grep -qi "loopback\|https" || fail "refusing plain http should say why: $(last_err)"
pass "plain http to a non-loopback hub is refused"
