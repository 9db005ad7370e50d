#!/usr/bin/env bash
# End to end: `cmc-agent sync --watch` keeps a device in sync as a long-running process,
# backs off while the hub is away, syncs again when it answers, and stops cleanly on SIGTERM.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
hub_init_users
start_hub
PORT=$HUB_PORT
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care


# wait_for NHS: until the tablet finds the plan (at most 30 s)
wait_for() {
  for _ in $(seq 1 150); do
    agent "$TABLET" lookup "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "plan $1 did not reach the watching tablet"
}

CMC_SYNC_INTERVAL=1 "$AGENT" --dir "$TABLET" sync --watch >"$E2E_TMP/watch.out" 2>"$E2E_TMP/watch.err" &
WATCH=$!
publish_plan 9434765919 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 >/dev/null
wait_for 9434765919
pass "a plan approved on the hub reaches the watching tablet"

kill_hub
for _ in $(seq 1 100); do grep -q "cannot sync" "$E2E_TMP/watch.err" && break; sleep 0.2; done
grep -q "cannot sync" "$E2E_TMP/watch.err" || fail "the watcher should say it cannot sync: $(cat "$E2E_TMP/watch.err")"
kill -0 $WATCH || fail "the watcher should keep running while the hub is away"
start_hub "$PORT"
publish_plan 4010232137 11111111-2222-4333-8444-555555555555 >/dev/null
wait_for 4010232137
grep -q "answers again" "$E2E_TMP/watch.err" || fail "the watcher should say when the hub answers again"
pass "the watcher backs off while the hub is away and catches up when it returns"

kill -TERM $WATCH
set +e; wait $WATCH; rc=$?; set -e
[ $rc -eq 0 ] || fail "the watcher should stop cleanly on SIGTERM (exit $rc)"
expect_exit 0 agent "$TABLET" verify
pass "the watcher stops cleanly and leaves a sound replica"
