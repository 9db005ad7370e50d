#!/usr/bin/env bash
# The live change feed's freshness budget (docs/BENCHMARKS.md, "Live"): one hub on 127.0.0.1,
# one real `cmc-agent sync --watch` device (poll interval 300 s) and a fleet of simulated
# watching devices (bench/live_bench.c: one C program holding their waits, not many agents),
# all in the region of the plans approved.
#
#   approve -> readable   from `cmc-hub plan approve` returning to the plan being readable in
#                         the watching device's replica; alone, then with the fleet held
#   withdraw -> purged    the same for `cmc-hub plan withdraw-consent`, with the fleet
#   hub RSS and CPU       before the fleet, and with every wait held (CPU over an idle window)
#   idle bytes            HTTP bytes of a wait that ran out, per device per hour (plain HTTP on
#                         loopback; TLS records and TCP/IP headers come on top)
#
# Two fleets in turn: every device in the plans' region (the worst case: each event wakes them
# all), then the devices dealt over the five London regions (a fifth wake).
# Knobs: LIVE_DEVICES=1000  LIVE_SAMPLES=20  LIVE_ALONE=10  LIVE_IDLE_S=60  LIVE_PLANS=2000
#        BENCH_OUT=bench/results  BENCH_KEEP=1 (keeps the scratch directory)
# Everything listens on 127.0.0.1 only; every loop is bounded; nothing is left running.
set -euo pipefail

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$HERE/../../shared}
AGENT="$BUILD/cmc-agent"
HUB="$BUILD/cmc-hub"
DRV="$BUILD/bench/live_bench"
N=${LIVE_DEVICES:-1000}
SAMPLES=${LIVE_SAMPLES:-20}
ALONE=${LIVE_ALONE:-10}
IDLE_S=${LIVE_IDLE_S:-60}
PLANS=${LIVE_PLANS:-2000}
REGION=south-east-london
OUT=${BENCH_OUT:-$HERE/results}
case "$OUT" in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac
WORK=$(mktemp -d /tmp/cmc-live-XXXXXX)
export CMC_PIN=bench-4711-pin   # benchmark-only PIN; the key slot still uses production Argon2id
unset CMC_USER CMC_AGENT_DIR CMC_HUB_DIR

HUB_PID= WATCH_PID= FLEET_PID=
stop() { [ -n "$1" ] && { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; return 0; }
cleanup() {
  stop "$FLEET_PID"; stop "$WATCH_PID"; stop "$HUB_PID"
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "live bench: $*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
make --no-print-directory -C "$HERE/.." BUILD="$BUILD" bench-bins >/dev/null || die "building the drivers failed"
mkdir -p "$OUT"
ulimit -n 8192 2>/dev/null || true
[ "$(ulimit -n)" -ge $(( N + 200 )) ] || die "needs $((N + 200)) open files (ulimit -n is $(ulimit -n))"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

say "hub: $PLANS seeded plans, $((2 * SAMPLES + ALONE)) plans awaiting approval"
HUB_DIR="$WORK/hub"
"$HUB" --dir "$HUB_DIR" init >/dev/null
"$HUB" --dir "$HUB_DIR" seed --plans "$PLANS" --seed 42 >/dev/null
"$DRV" prepare "$HUB_DIR" "$SHARED/examples/plan.json" $((2 * SAMPLES + ALONE)) "$REGION" >"$WORK/plans.txt"

printf 'max_connections = %d\n' $(( N + 256 )) >"$WORK/hub.conf"
export CMC_HUB_CONFIG="$WORK/hub.conf"
for _ in 1 2 3 4 5; do
  PORT=$(( 20000 + RANDOM % 12000 ))
  CMC_LOG=warn "$HUB" --dir "$HUB_DIR" serve --listen "127.0.0.1:$PORT" >"$WORK/hub.log" 2>&1 &
  HUB_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  stop "$HUB_PID"; HUB_PID=
done
[ -n "$HUB_PID" ] || { cat "$WORK/hub.log" >&2; die "the hub did not start"; }
URL="http://127.0.0.1:$PORT"

say "the watching device: enrolled, synced, then sync --watch (CMC_SYNC_INTERVAL=300)"
DEV="$WORK/device"
code=$("$HUB" --dir "$HUB_DIR" device add live-tablet --scope "region:$REGION" --role urgent_care | tail -n 1)
"$AGENT" --dir "$DEV" init --user crew --role urgent_care >/dev/null
"$AGENT" --dir "$DEV" enroll --hub "$URL" --code "$code" --name live-tablet >/dev/null
"$AGENT" --dir "$DEV" sync >/dev/null
CMC_SYNC_INTERVAL=300 "$AGENT" --dir "$DEV" sync --watch >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
for _ in $(seq 1 100); do "$AGENT" --dir "$DEV" status | grep -q '^watch: *live' && break; sleep 0.2; done
"$AGENT" --dir "$DEV" status | grep -q '^watch: *live' || die "the device did not go live: $(cat "$WORK/watch.err")"
RSS0=$(rss_kib "$HUB_PID")

say "approve -> readable, the device alone ($ALONE samples)"
"$DRV" probe "$DEV" "$HUB_DIR" "$HUB" "$WORK/plans.txt" approve 0 "$ALONE" >"$WORK/alone.json"

# run_phase NAME SCOPE FIRST: a fleet of N with SCOPE held; the hub idle with it, then
# SAMPLES approvals and SAMPLES withdrawals from line FIRST of the plans file.
run_phase() {
  local name=$1 scope=$2 first=$3 c0 c1 t0 t1
  say "$name: $N simulated watching devices ($scope)"
  rm -f "$WORK/ready"
  "$DRV" fleet "$HUB_DIR" "$URL" "$N" "$scope" 50 3600 "$WORK/ready" >"$WORK/$name-fleet.json" 2>"$WORK/$name-fleet.err" &
  FLEET_PID=$!
  for _ in $(seq 1 1800); do [ -e "$WORK/ready" ] && break; kill -0 "$FLEET_PID" 2>/dev/null || break; sleep 0.1; done
  [ -e "$WORK/ready" ] || die "the fleet did not come up: $(cat "$WORK/$name-fleet.err")"
  sleep 2
  local rss_held; rss_held=$(rss_kib "$HUB_PID")
  say "$name: idle, $N waits held for $IDLE_S s (each runs out and is renewed once)"
  c0=$(cpu_ticks "$HUB_PID"); t0=$(date +%s%N)
  sleep "$IDLE_S"
  c1=$(cpu_ticks "$HUB_PID"); t1=$(date +%s%N)
  local cpu_idle; cpu_idle=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", 100 * c / hz / (ns / 1e9)}')
  say "$name: approve -> readable ($SAMPLES samples), then consent withdrawal -> purged"
  c0=$(cpu_ticks "$HUB_PID"); t0=$(date +%s%N)
  "$DRV" probe "$DEV" "$HUB_DIR" "$HUB" "$WORK/plans.txt" approve "$first" "$SAMPLES" >"$WORK/$name-approve.json"
  "$DRV" probe "$DEV" "$HUB_DIR" "$HUB" "$WORK/plans.txt" withdraw "$first" "$SAMPLES" >"$WORK/$name-withdraw.json"
  c1=$(cpu_ticks "$HUB_PID"); t1=$(date +%s%N)
  local cpu_events; cpu_events=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", 100 * c / hz / (ns / 1e9)}')
  local rss_after; rss_after=$(rss_kib "$HUB_PID")
  kill -0 "$WATCH_PID" 2>/dev/null || die "the watching device stopped: $(cat "$WORK/watch.err")"
  stop "$FLEET_PID"; FLEET_PID=
  jq -n --arg scope "$scope" --argjson approve "$(cat "$WORK/$name-approve.json")" \
    --argjson withdraw "$(cat "$WORK/$name-withdraw.json")" --argjson fleet "$(cat "$WORK/$name-fleet.json")" \
    --argjson rss_held "$rss_held" --argjson rss_after "$rss_after" --argjson cpu_idle "$cpu_idle" \
    --argjson cpu_events "$cpu_events" --argjson idle_s "$IDLE_S" \
    '{scope: $scope, approve_ms: $approve, withdraw_ms: $withdraw, fleet: $fleet,
      hub_rss_kib: {fleet_held: $rss_held, after_events: $rss_after},
      hub_cpu_percent: {idle_window_s: $idle_s, idle_held: $cpu_idle, during_events: $cpu_events}}' \
    >"$WORK/$name.json"
}
HZ=$(getconf CLK_TCK)
run_phase same "region:$REGION" "$ALONE"
run_phase spread "spread:north-central-london,north-east-london,north-west-london,$REGION,south-west-london" \
  $((ALONE + SAMPLES))

jq -n --argjson alone "$(cat "$WORK/alone.json")" --argjson same "$(cat "$WORK/same.json")" \
  --argjson spread "$(cat "$WORK/spread.json")" --argjson rss0 "$RSS0" --argjson n "$N" \
  --argjson plans "$PLANS" --arg cores "$(nproc)" \
  '{devices: $n, hub_plans: $plans, cores: ($cores | tonumber), hub_rss_kib_before_fleet: $rss0,
    approve_alone_ms: $alone, same_region: $same, spread: $spread,
    targets: {approve_p50_ms: 1000, approve_p99_ms: 5000, idle_bytes_per_minute: 1024}}' >"$OUT/live.json"

jq -r '"live: approve->readable, the device alone: p50 \(.approve_alone_ms.p50_ms) ms p99 \(.approve_alone_ms.p99_ms) ms",
  (["same_region", "spread"][] as $k | .[$k] |
   "live [\($k): \(.scope)]: approve->readable p50 \(.approve_ms.p50_ms) ms p99 \(.approve_ms.p99_ms) ms (n \(.approve_ms.n), timed out \(.approve_ms.timed_out)); withdraw->purged p50 \(.withdraw_ms.p50_ms) ms p99 \(.withdraw_ms.p99_ms) ms (timed out \(.withdraw_ms.timed_out))",
   "live [\($k)]: hub RSS \(.hub_rss_kib.fleet_held) KiB held, \(.hub_rss_kib.after_events) KiB after events; CPU \(.hub_cpu_percent.idle_held) % idle held, \(.hub_cpu_percent.during_events) % during events",
   "live [\($k)]: idle \(.fleet.idle_bytes_per_wait) bytes a wait, \(.fleet.idle_bytes_per_device_hour) bytes per device-hour; wakes \(.fleet.wakes), wait errors \(.fleet.wait_errors), pull errors \(.fleet.pull_errors)"),
  "live: hub RSS before any fleet \(.hub_rss_kib_before_fleet) KiB"' "$OUT/live.json"
echo "live: results in $OUT/live.json" >&2
