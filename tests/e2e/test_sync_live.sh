#!/usr/bin/env bash
# End to end: the live change feed. Devices running `sync --watch` with the default-length
# poll interval (CMC_SYNC_INTERVAL=300) hold a wait at the hub; a plan approved at the hub, a
# consent withdrawal and a wipe order reach them well inside the poll interval (the bound
# below is generous: it proves "not the next poll", not a latency). A device outside the
# plan's region gets nothing. `status` says "live" and when the last change arrived.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
BOUND=20   # seconds; the poll interval is 300
hub_init_users
start_hub

A="$E2E_TMP/tablet-a"; B="$E2E_TMP/tablet-b"; C="$E2E_TMP/tablet-c"
new_device "$A" tablet-a "region:$REGION" urgent_care urgent_care
new_device "$B" tablet-b "region:$REGION" urgent_care urgent_care
new_device "$C" tablet-c "region:north-central-london" urgent_care urgent_care

is_live() { agent "$1" status | grep -q '^watch: *live'; }
has_plan() { agent "$1" lookup "$2"; }
lacks_plan() { ! agent "$1" lookup "$2" >/dev/null 2>&1; }

W=()
for d in "$A" "$B" "$C"; do
  CMC_SYNC_INTERVAL=300 "$AGENT" --dir "$d" sync --watch >"$d.watch.out" 2>"$d.watch.err" &
  W+=($!)
done
for d in "$A" "$B" "$C"; do
  within 30 is_live "$d" || fail "$(basename "$d") should be live: $(agent "$d" status | grep watch) $(cat "$d.watch.err")"
done
agent "$A" status | grep -q '^last change: *none yet' || fail "no change has arrived yet: $(agent "$A" status)"
# Held, not spinning: while nothing changes the hub answers (almost) no waits.
waits_answered() {
  curl -s --cacert "$CA" "$HUB_URL/metrics" |
    awk '/^cmc_hub_requests_total\{endpoint="wait"/ {n += $NF} END {print n + 0}'
}
w0=$(waits_answered); sleep 3; w1=$(waits_answered)
[ $((w1 - w0)) -le 3 ] || fail "idle devices should hold their waits, yet the hub answered $((w1 - w0)) in 3 s"
held=$(curl -s --cacert "$CA" "$HUB_URL/metrics" | awk '/^cmc_hub_waits_held / {print $2}')
[ "${held:-0}" -ge 2 ] || fail "/metrics should count the held waits (3 devices watching): '${held}'"
pass "three watching devices hold a wait at the hub (status: live, cmc_hub_waits_held $held), no busy polling"

publish_plan 9434765919 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 >/dev/null
within $BOUND has_plan "$A" 9434765919 || fail "the approved plan did not reach tablet-a within $BOUND s (poll interval 300 s)"
within $BOUND has_plan "$B" 9434765919 || fail "the approved plan did not reach tablet-b within $BOUND s"
agent "$A" status | grep -q '^last change: *[0-9]' || fail "status should say when the last change arrived: $(agent "$A" status)"
lacks_plan "$C" 9434765919 || fail "a device outside the region must not receive the plan"
pass "an approved plan is readable on every watching device in scope within $BOUND s, not at the next poll"

hub plan withdraw-consent 9434765919 --as gp1 --reason "patient request" >/dev/null
within $BOUND lacks_plan "$A" 9434765919 || fail "the consent withdrawal did not purge tablet-a within $BOUND s"
within $BOUND lacks_plan "$B" 9434765919 || fail "the consent withdrawal did not purge tablet-b within $BOUND s"
pass "a consent withdrawal purges every watching device within $BOUND s"

# The lease reaches a device as policy: a changed lease wakes it too.
hub device lease tablet-b 3 >/dev/null
lease_is_3() { [ "$(agent "$B" status --json | jq -r .lease_days)" = 3 ]; }
within $BOUND lease_is_3 || fail "the lease change did not reach tablet-b within $BOUND s"
pass "a lease change reaches the watching device within $BOUND s"

hub device wipe tablet-a >/dev/null
gone() { ! kill -0 "${W[0]}" 2>/dev/null; }
within $BOUND gone || fail "the wipe order did not reach tablet-a within $BOUND s"
[ ! -e "$A/replica.db" ] || fail "tablet-a's replica should be destroyed by the wipe"
pass "a wipe order reaches the watching device within $BOUND s"

kill -TERM "${W[1]}" "${W[2]}"
stopped() { ! kill -0 "${W[1]}" 2>/dev/null && ! kill -0 "${W[2]}" 2>/dev/null; }
within 15 stopped || fail "a watcher holding a wait should stop promptly on SIGTERM"
for p in "${W[1]}" "${W[2]}"; do
  set +e; wait "$p"; rc=$?; set -e
  [ $rc -eq 0 ] || fail "a watcher should stop cleanly on SIGTERM (exit $rc)"
done
agent "$B" status | grep -q '^watch: *not watching' || fail "status should say nothing watches once it stopped"
expect_exit 0 agent "$B" verify
pass "the watchers stop cleanly; status says so; the replica verifies"
