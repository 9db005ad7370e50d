#!/usr/bin/env bash
# Hostile hub (H-06, H-01, H-15): a server holding a key the device pinned serves forged, replayed,
# backwards, misaddressed, draft-carrying, oversized, zlib-bomb and cut-short bundles, wrong
# cursors, 500s and 503s with Retry-After. Each is refused (or waited out) with one clear line,
# the replica is unchanged and still verifies, and a correct bundle afterwards applies.
# The endless stall (the agent gives up after its low-speed limit, 30 s per attempt) runs in
# `make torture` only.
. "$(dirname "$0")/lib.sh"

HOSTILE="$BUILD/tests/fault/hostile_hub"
MODE="$E2E_TMP/mode"
DEV="$E2E_TMP/dev"
echo good >"$MODE"
"$HOSTILE" --mode-file "$MODE" --port-file "$E2E_TMP/hostile.port" --plans 25 2>"$E2E_TMP/hostile.log" &
HOSTILE_PID=$!
for _ in $(seq 1 100); do [ -s "$E2E_TMP/hostile.port" ] && break; sleep 0.05; done
[ -s "$E2E_TMP/hostile.port" ] || fail "the hostile hub did not start"
URL="http://127.0.0.1:$(cat "$E2E_TMP/hostile.port")"
stop_hostile() { kill "$HOSTILE_PID" 2>/dev/null || true; wait "$HOSTILE_PID" 2>/dev/null || true; }
trap 'stop_hostile; e2e_cleanup' EXIT

agent "$DEV" init --user crew --role urgent_care >/dev/null
expect_exit 0 agent "$DEV" enroll --hub "$URL" --code AAAA-BBBB-CCCC-DDDD --name hostile-target
expect_exit 0 agent "$DEV" sync --json
[ "$(jget .cursor)" -eq 100 ] && [ "$(jget .puts)" -eq 25 ] || fail "the first correct sync: $(last_out)"

state() {
  agent "$DEV" status --json | jq -c '[.cursor, .plans_visible, .plans_published, .tombstones]'
  agent "$DEV" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort | sha256sum
}
BEFORE=$(state)

# attack  expected-message-regex
check_refused() {
  local mode=$1 want=$2
  echo "$mode" >"$MODE"
  set +e; agent "$DEV" sync >"$E2E_TMP/last.out" 2>"$E2E_TMP/last.err"; local rc=$?; set -e
  [ "$rc" -ne 0 ] || fail "[$mode] the sync should have been refused"
  [ "$(wc -l <"$E2E_TMP/last.err")" -eq 1 ] || fail "[$mode] one error line expected: $(last_err)"
  last_err | grep -qiE "$want" || fail "[$mode] unclear message: $(last_err)"
  local msg; msg=$(last_err)
  [ "$(state)" = "$BEFORE" ] || fail "[$mode] the replica changed"
  expect_exit 0 agent "$DEV" verify
  pass "[$mode] refused: $msg"
}

check_refused forged   "signature"
check_refused replay   "cursor"
check_refused older    "cursor"
check_refused cursor   "cursor"
check_refused wrongdev "another device"
check_refused draft    "published plans only"
check_refused toomany  "op count.*cap"
check_refused bigbody  "larger than"
check_refused bomb     "inflates past"
check_refused badzlib  "zlib"
check_refused truncate "body|shorter|length"
check_refused e500     "500"

# 503 with Retry-After twice: waited out, then the sync completes
echo "retry 2" >"$MODE"
start=$(date +%s)
expect_exit 0 agent "$DEV" sync
[ $(( $(date +%s) - start )) -ge 2 ] || fail "Retry-After: 1 twice should take two seconds or more"
[ "$(state)" = "$BEFORE" ] || fail "an empty poll after 503s changed the replica"
pass "[retry 2] 503 + Retry-After waited out, then the sync completed"

if [ -n "${CMC_TORTURE:-}" ]; then
  echo stall >"$MODE"
  set +e; timeout 400 "$AGENT" --dir "$DEV" sync >"$E2E_TMP/last.out" 2>"$E2E_TMP/last.err"; rc=$?; set -e
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "[stall] the agent should give up on its own (exit $rc)"
  [ "$(state)" = "$BEFORE" ] || fail "[stall] the replica changed"
  pass "[stall] an endless stall is given up: $(last_err)"
fi

echo good >"$MODE"
expect_exit 0 agent "$DEV" sync
expect_exit 0 agent "$DEV" verify
pass "after every attack the next correct sync completes"
