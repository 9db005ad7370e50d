#!/usr/bin/env bash
# Faults on the live change feed (H-29, H-30): agent --plain HTTP--> fault_proxy --> cmc-hub.
# A device running `sync --watch` (poll interval 300 s) holds waits through the proxy while:
#   - the hub is killed (SIGKILL) mid-wait and restarted while a plan is approved;
#   - the link goes silent mid-wait (the relay frozen: no FIN, no reset) while a plan is approved;
#   - the proxy closes connections idle for 12 s, shorter than the device's 50 s hold;
#   - the hub answers 404 to waits, as a hub older than the feed does.
# Each time the device notices, reconnects and catches up from its cursor: the plans approved
# meanwhile arrive well inside the poll interval, and at the end its plans are exactly those
# of a device that synced once, undisturbed.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
BOUND=40 # seconds; generous: the poll interval is 300
hub_init_users

serve_plain
start_fault_proxy
HUB_URL="http://127.0.0.1:$PROXY_PORT"
trap 'kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; e2e_cleanup' EXIT

new_plain_device() { # DIR NAME: enrolled through the proxy (plain HTTP on loopback)
  local code
  code=$(hub device add "$2" --scope "region:$REGION" --role urgent_care | tail -n 1)
  agent "$1" init --user "$2-user" --role urgent_care >/dev/null || fail "init $2"
  agent "$1" enroll --hub "$HUB_URL" --code "$code" --name "$2" >/dev/null || fail "enroll $2"
}
watch_is() { agent "$T" status | grep -q "^watch: *$1"; }
has_plan() { agent "$T" lookup "$1"; }
relays() { pgrep -P "$PROXY_PID" || true; } # the proxy's per-connection children
WATCH=
start_watch() { # start_watch [HOLD]
  CMC_SYNC_INTERVAL=300 CMC_WATCH_HOLD=${1:-} "$AGENT" --dir "$T" sync --watch >>"$E2E_TMP/watch.out" 2>>"$E2E_TMP/watch.err" &
  WATCH=$!
  within 30 watch_is live || fail "the watcher should go live: $(cat "$E2E_TMP/watch.err")"
}
stop_watch() {
  kill -TERM "$WATCH"; set +e; wait "$WATCH"; local rc=$?; set -e
  [ $rc -eq 0 ] || fail "the watcher should stop cleanly (exit $rc)"
}

T="$E2E_TMP/tablet"
new_plain_device "$T" tablet
start_watch 5

# ---- the hub dies mid-wait; a plan is approved while it is down ----------------------------
sleep 1
kill_hub
publish_plan 9434765919 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 >/dev/null
sleep 2
serve_plain "$HUB_PLAIN"
within $BOUND has_plan 9434765919 || fail "after the hub restarted the plan approved meanwhile did not arrive: $(tail -n 3 "$E2E_TMP/watch.err")"
within 20 watch_is live || fail "the watcher should be live again after the hub restarted"
pass "the hub restarts mid-wait: the device reconnects and gets the plan approved meanwhile"

# ---- the link goes silent mid-wait (no FIN, no reset) ----------------------------------------
sleep 1
FROZEN=$(relays)
[ -n "$FROZEN" ] || fail "the watcher should hold a connection through the proxy"
kill -STOP $FROZEN
publish_plan 4010232137 11111111-2222-4333-8444-555555555555 >/dev/null
within $BOUND has_plan 4010232137 || fail "after a silent link drop the device did not reconnect and catch up"
kill -CONT $FROZEN 2>/dev/null || true
kill $FROZEN 2>/dev/null || true
pass "a link that goes silent mid-wait is noticed; the device reconnects and misses nothing"
stop_watch

# ---- a proxy that closes connections idle for 12 s (the device holds for up to 50 s) ----------
echo "idle 12000" >"$FAULT_CFG"
for p in $(relays); do kill "$p" 2>/dev/null || true; done
start_watch
sleep 16 # one wait cut at 12 s; the device holds for less from then on
publish_plan 5000000048 22222222-3333-4444-8555-666666666666 >/dev/null
within $BOUND has_plan 5000000048 || fail "behind an idle-cutting proxy the plan did not arrive"
watch_is live || fail "the device should stay live with shorter holds: $(agent "$T" status | grep watch)"
! grep -q "keep being cut" "$E2E_TMP/watch.err" || fail "one cut should shorten the hold, not end live mode"
pass "a proxy cutting idle connections: the device holds for less and stays live"
stop_watch

# ---- a hub without the feed: the device polls ------------------------------------------------
echo "nowait" >"$FAULT_CFG"
for p in $(relays); do kill "$p" 2>/dev/null || true; done
CMC_SYNC_INTERVAL=2 "$AGENT" --dir "$T" sync --watch >>"$E2E_TMP/watch.out" 2>>"$E2E_TMP/watch.err" &
WATCH=$!
within 30 watch_is "polling every 2 s" || fail "with no feed the watcher should poll: $(agent "$T" status | grep watch)"
grep -q "offers no change feed" "$E2E_TMP/watch.err" || fail "the watcher should say why it polls"
publish_plan 9000000017 33333333-4444-4555-8666-777777777777 >/dev/null
within $BOUND has_plan 9000000017 || fail "a polling device should still get new plans"
pass "a hub that answers 404 to waits: the device says so and polls"
stop_watch
echo none >"$FAULT_CFG"

# ---- nothing was missed ------------------------------------------------------------------------
REF="$E2E_TMP/ref"
new_plain_device "$REF" ref
expect_exit 0 agent "$REF" sync
snap() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort; }
[ "$(snap "$T")" = "$(snap "$REF")" ] || fail "the watched device differs from one synced once: $(diff <(snap "$T") <(snap "$REF"))"
expect_exit 0 agent "$T" verify
pass "after every fault the device holds exactly what a device synced once holds"
