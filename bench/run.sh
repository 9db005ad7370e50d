#!/usr/bin/env bash
# make bench: cmc-hub and cmc-agent on 127.0.0.1, measured at several sizes, with PouchDB
# replicating from pouchdb-server over the same plans as the peer. docs/BENCHMARKS.md says
# what is measured and how to read it.
#
# Knobs (environment):
#   BENCH_SCALES="10000 100000"  plan counts seeded on the hub (one full run each)
#   BENCH_1M=1                   adds 1000000 (long: see docs/BENCHMARKS.md)
#   BENCH_ROUNDS=10              incremental rounds inside a long-running agent (and idle polls)
#   BENCH_PROC_ROUNDS=5          incremental rounds as a whole `cmc-agent sync` process
#   BENCH_PEER=1                 0 skips PouchDB
#   BENCH_OUT=bench/results      where results.json, the per-scale files and the plot go
#   BENCH_KEEP=1                 keeps the scratch directory (hubs, replicas, logs)
#   BENCH_LINKS="4g:20000:50:0 poor:1000:300:10"
#                                shaped links (name:kbit/s:RTT ms:loss per mille) through the
#                                fault proxy; "" skips them
#   BENCH_LINK_SCALES=<first>    the scales the shaped links run at (slow links take minutes
#                                at 100k plans)
#   BENCH_LINK_ROUNDS=3          100-change rounds per shaped link
#   BENCH_FLEET=16               tablets enrolling at once (initial syncs in parallel), with
#                                the hub's CPU per initial sync; 0 skips it
#   BENCH_FLEET_SCALES=<first>   the scales the fleet runs at
#   BENCH_LIVE=1                 0 skips the live change feed's run (bench/live.sh, LIVE_* knobs)
# Everything listens on 127.0.0.1 only; every loop is bounded in count and time; nothing is
# left running.
set -euo pipefail

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
AGENT="$BUILD/cmc-agent"
HUB="$BUILD/cmc-hub"
DRV="$BUILD/bench/cmc_bench"
SCALES=${BENCH_SCALES:-"10000 100000"}
[ -n "${BENCH_1M:-}" ] && SCALES="$SCALES 1000000"
ROUNDS=${BENCH_ROUNDS:-10}
PROC_ROUNDS=${BENCH_PROC_ROUNDS:-5}
CHANGES=100
PEER=${BENCH_PEER:-1}
OUT=${BENCH_OUT:-$HERE/results}
case "$OUT" in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac
LINKS=${BENCH_LINKS-"4g:20000:50:0 poor:1000:300:10"}
LINK_SCALES=${BENCH_LINK_SCALES:-${SCALES%% *}}
LINK_ROUNDS=${BENCH_LINK_ROUNDS:-3}
FLEET=${BENCH_FLEET:-16}
FLEET_SCALES=${BENCH_FLEET_SCALES:-${SCALES%% *}}
PROXY="$BUILD/tests/fault/fault_proxy"
WORK=$(mktemp -d /tmp/cmc-bench-XXXXXX)
export CMC_PIN=bench-4711-pin   # benchmark-only PIN; the key slot still uses production Argon2id
unset CMC_USER CMC_AGENT_DIR CMC_HUB_DIR

HUB_PID=
PEER_PID=
LINK_PID=
cleanup() {
  if [ -n "$LINK_PID" ]; then kill "$LINK_PID" 2>/dev/null || true; wait "$LINK_PID" 2>/dev/null || true; fi
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi
  if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
now_ns() { date +%s%N; }

for tool in jq /usr/bin/time; do command -v "$tool" >/dev/null || die "$tool is needed (apt-get install jq time)"; done
make --no-print-directory -C "$HERE/.." BUILD="$BUILD" bench-bins "$PROXY" >/dev/null ||
  die "building the benchmark driver failed"
mkdir -p "$OUT"

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port on 127.0.0.1"
}

wait_http() {   # wait_http URL PID (https: trusts the benchmark's CA)
  for _ in $(seq 1 200); do
    curl -s -o /dev/null --cacert "$CA" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# ---- TLS: a CA and a certificate for 127.0.0.1 made for this run (the hub serves HTTPS, as in
# production; the peer stays on plain HTTP, as users run it behind a proxy) ---------------------
CA="$WORK/certs/ca.pem"
make_certs() { "$HERE/certs.sh" "$WORK/certs" "cmc bench CA"; }
command -v openssl >/dev/null || die "openssl is needed to make the benchmark's TLS certificate"
make_certs || die "could not make the benchmark's TLS certificate"
export CMC_BENCH_CA="$CA"   # cmc_bench load trusts it

# whole NAME N EXPECT_RC PREP CMD...: runs CMD N times, each a whole process with
# CMC_TRACE_PHASES=1 (PREP, untimed, before each; "" for none); writes $R/proc-NAME.json with the
# wall times and the phase breakdown (unlock / open / network / apply / commit) of the median run.
whole() {
  local name=$1 n=$2 want=$3 prep=$4; shift 4
  local i t0 t1 got trace out="$R/proc-$name.ndjson"
  : >"$out"
  for i in $(seq 1 "$n"); do
    if [ -n "$prep" ]; then $prep "$i" >/dev/null; fi
    t0=$(now_ns)
    got=0
    CMC_TRACE_PHASES=1 "$@" >"$D/whole.out" 2>"$D/whole.err" || got=$?
    t1=$(now_ns)
    [ "$got" = "$want" ] || { tail -n 3 "$D/whole.err" >&2; die "$name: exit $got, expected $want"; }
    trace=$(sed -n 's/^cmc-trace: //p' "$D/whole.err" | tail -n 1)
    jq -nc --argjson us "$(( (t1 - t0) / 1000 ))" --argjson t "${trace:-null}" \
      --argjson out "$(jq -c . "$D/whole.out" 2>/dev/null || echo null)" \
      '{ms: ($us / 1000), trace: $t, out: $out}' >>"$out"
  done
  jq -s 'def q(p): sort | .[((length * p) | ceil) - 1];
    {n: length, p50: (map(.ms) | q(0.5)), p99: (map(.ms) | q(0.99)), samples_ms: map(.ms),
     phases: (sort_by(.ms) | .[((length * 0.5) | ceil) - 1].trace),
     last: (last.out)}' "$out" >"$R/proc-$name.json"
}

# ---- shaped links: the fault proxy in front of a server, one link line at a time -------------
# link_start UPSTREAM_PORT: a proxy whose link is set by writing $D/link.cfg; sets LINK_PORT.
link_start() {
  : >"$D/link.cfg"
  rm -f "$D/link.port"
  "$PROXY" --listen 0 --to "$1" --config "$D/link.cfg" --port-file "$D/link.port" --stats "$D/link.stats" \
    >"$D/link.log" 2>&1 &
  LINK_PID=$!
  for _ in $(seq 1 100); do [ -s "$D/link.port" ] && break; sleep 0.05; done
  [ -s "$D/link.port" ] || die "the fault proxy did not start"
  LINK_PORT=$(cat "$D/link.port")
}
link_stop() { kill "$LINK_PID" 2>/dev/null || true; wait "$LINK_PID" 2>/dev/null || true; LINK_PID=; }

# link_bytes: "UP DOWN" carried so far, once every connection through the proxy has closed.
link_bytes() {
  local up=0 down=0 conns=0 closed=-1
  for _ in $(seq 1 200); do
    read -r _ up _ down _ conns _ closed <"$D/link.stats" || true
    [ "$conns" = "$closed" ] && break
    sleep 0.05
  done
  echo "$up $down"
}

# link_run OUT PREP CMD...: one whole process over the shaped link, timed; appends
# {ms, up, down, out} (bytes on the wire, TLS included, both ways) to OUT.
link_run() {
  local out=$1 prep=$2; shift 2
  local b0 b1 t0 t1
  if [ -n "$prep" ]; then $prep >/dev/null; fi
  b0=$(link_bytes)
  t0=$(now_ns)
  "$@" >"$D/link.out" 2>"$D/link.err" || { tail -n 3 "$D/link.err" >&2; die "over the shaped link: $* failed"; }
  t1=$(now_ns)
  b1=$(link_bytes)
  jq -nc --argjson us "$(( (t1 - t0) / 1000 ))" --argjson up "$(( ${b1% *} - ${b0% *} ))" \
    --argjson down "$(( ${b1#* } - ${b0#* } ))" --argjson o "$(jq -c . "$D/link.out" 2>/dev/null || echo null)" \
    '{ms: ($us / 1000), up: $up, down: $down, out: $o}' >>"$out"
}

# link_summary NDJSON: the first line is the initial sync, the rest 100-change rounds.
link_summary() {
  jq -s 'def q(p): sort | .[((length * p) | ceil) - 1];
    {initial: .[0], sync100: (.[1:] | {n: length, p50: (map(.ms) | q(0.5)), samples_ms: map(.ms),
      up: (map(.up) | q(0.5)), down: (map(.down) | q(0.5)), requests: (.[-1].out.requests // null)})}' "$1"
}

# cmc over each shaped link: a new tablet enrolled through the link, its initial sync, then
# 100-change rounds, each a whole `cmc-agent sync` process.
run_links_cmc() {
  local n=$1 hub_dir=$2 port=$3 spec name kbit rtt loss
  link_start "$port"
  for spec in $LINKS; do
    IFS=: read -r name kbit rtt loss <<<"$spec"
    say "$n plans: cmc over the shaped link '$name' ($kbit kbit/s, $rtt ms RTT, $loss per mille lost)"
    echo "link $kbit $rtt $loss" >"$D/link.cfg"
    local dev="$D/link-$name" code
    code=$("$HUB" --dir "$hub_dir" device add "bench-link-$name" --scope all --role urgent_care | tail -n 1)
    "$AGENT" --dir "$dev" init --user crew --role urgent_care >/dev/null
    "$AGENT" --dir "$dev" enroll --hub "https://127.0.0.1:$LINK_PORT" --code "$code" --ca "$CA" \
      --name "bench-link-$name" >/dev/null
    local nd="$D/link-$name-cmc.ndjson" i
    : >"$nd"
    link_run "$nd" "" "$AGENT" --dir "$dev" sync --json
    for i in $(seq 1 "$LINK_ROUNDS"); do
      link_run "$nd" "$DRV change $hub_dir $CHANGES $((3000 + i))" "$AGENT" --dir "$dev" sync --json
    done
    jq -n --arg name "$name" --argjson kbit "$kbit" --argjson rtt "$rtt" --argjson loss "$loss" \
      --argjson cmc "$(link_summary "$nd")" \
      '{name: $name, kbit: $kbit, rtt_ms: $rtt, loss_permille: $loss, cmc: $cmc}' >"$R/link-$name.json"
  done
  link_stop
}

# The peer over the same links: an initial replication (batch_size 1000) into a new local db,
# then 100-change rounds, each a whole node process; merged into link-NAME.json.
run_links_peer() {
  local n=$1 url=$2 port=$3 p=$4 spec name kbit rtt loss i
  link_start "$port"
  for spec in $LINKS; do
    IFS=: read -r name kbit rtt loss <<<"$spec"
    [ -s "$R/link-$name.json" ] || continue
    say "$n plans: the peer over the shaped link '$name'"
    echo "link $kbit $rtt $loss" >"$D/link.cfg"
    local lurl="http://127.0.0.1:$LINK_PORT" nd="$D/link-$name-peer.ndjson"
    : >"$nd"
    link_run "$nd" "" node "$HERE/peer.js" pull "$lurl" plans "$p/link-$name" 1000
    for i in $(seq 1 "$LINK_ROUNDS"); do
      link_run "$nd" "node $HERE/peer.js change $url plans $CHANGES $((3000 + i))" \
        node "$HERE/peer.js" once "$lurl" plans "$p/link-$name" 1000
    done
    jq --argjson peer "$(link_summary "$nd")" '. + {peer: $peer}' "$R/link-$name.json" >"$R/link-$name.tmp"
    mv "$R/link-$name.tmp" "$R/link-$name.json"
  done
  link_stop
}

in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

# The hub's CPU seconds so far (user + system), from /proc.
hub_cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$HUB_PID/stat"; }

# A fleet enrolling at once: F new tablets, their initial syncs started together (each a
# whole `cmc-agent sync`); wall time until the last is done, and the hub's CPU for all of them.
run_fleet() {
  local n=$1 hub_dir=$2 url=$3 f=$FLEET i code pids=() c0 c1 t0 t1
  say "$n plans: $f tablets enrolling at once"
  for i in $(seq 1 "$f"); do
    code=$("$HUB" --dir "$hub_dir" device add "bench-fleet-$i" --scope all --role urgent_care | tail -n 1)
    "$AGENT" --dir "$D/fleet-$i" init --user crew --role urgent_care >/dev/null
    "$AGENT" --dir "$D/fleet-$i" enroll --hub "$url" --code "$code" --ca "$CA" --name "bench-fleet-$i" >/dev/null
  done
  c0=$(hub_cpu); t0=$(now_ns)
  for i in $(seq 1 "$f"); do
    "$AGENT" --dir "$D/fleet-$i" sync --json >"$D/fleet-$i.json" 2>"$D/fleet-$i.err" &
    pids+=("$!")
  done
  local failed=0
  for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
  t1=$(now_ns); c1=$(hub_cpu)
  jq -n --argjson f "$f" --argjson ms "$(( (t1 - t0) / 1000000 ))" --argjson cpu "$(echo "$c1 - $c0" | bc -l)" \
    --argjson failed "$failed" --slurpfile one "$R/proc-initial.json" \
    '{devices: $f, wall_ms: $ms, hub_cpu_s: $cpu, hub_cpu_s_per_sync: ($cpu / $f), failed: $failed,
      one: {wall_ms: $one[0].p50, hub_cpu_s: $one[0].hub_cpu_s}}' >"$R/fleet.json"
  rm -rf "$D"/fleet-*
}

# ---- the peer: PouchDB 9 (leveldb) and pouchdb-server from npm, into bench/node_modules ---------
peer_ready() {
  [ "$PEER" = 1 ] || { PEER_WHY="BENCH_PEER=0"; return 1; }
  command -v node >/dev/null && command -v npm >/dev/null || { PEER_WHY="node/npm not installed"; return 1; }
  if [ ! -d "$HERE/node_modules/pouchdb" ] || [ ! -d "$HERE/node_modules/pouchdb-server" ]; then
    say "installing the peer (npm: pouchdb 9, pouchdb-server 4) into bench/node_modules"
    if ! (cd "$HERE" && timeout 600 npm install --no-audit --no-fund --no-package-lock --loglevel=error \
          >"$WORK/npm.log" 2>&1); then
      PEER_WHY="npm could not install pouchdb/pouchdb-server (see $WORK/npm.log; is the npm registry reachable?)"
      return 1
    fi
  fi
  node -e "require('$HERE/node_modules/pouchdb')" 2>"$WORK/peer-check.log" ||
    { PEER_WHY="pouchdb does not load: $(head -n 1 "$WORK/peer-check.log")"; return 1; }
  return 0
}
PEER_WHY=
if peer_ready; then PEER_ON=1; else PEER_ON=0; echo "peer skipped: $PEER_WHY" >&2; fi

# ---- one scale -----------------------------------------------------------------------------------
run_scale() {
  local n=$1 d="$WORK/n$n" r="$OUT/scale-$n"
  mkdir -p "$d" "$r"
  say "$n plans: seeding the hub"
  local hub_dir="$d/hub" dev="$d/device"
  "$HUB" --dir "$hub_dir" init >/dev/null
  local t0 t1
  t0=$(now_ns); "$HUB" --dir "$hub_dir" seed --plans "$n" --seed 42 >/dev/null; t1=$(now_ns)
  echo "{\"plans\": $n, \"seed_ms\": $(( (t1 - t0) / 1000000 ))}" >"$r/seed.json"

  local port tries=0
  D=$d R=$r
  while :; do
    port=$(free_port)
    # The benchmark's own settings file: HTTPS, and room for the 64 polling devices and the
    # enrolling fleet on one address (the built-in limits, 32 connections and 10 enrollments
    # a minute per address, stay the defaults for everyone else).
    cat >"$d/hub.conf" <<EOF_CONF
listen = 127.0.0.1:$port
tls_cert = $WORK/certs/server.pem
tls_key = $WORK/certs/server.key
per_ip_connections = 128
enroll_per_minute = 1000
EOF_CONF
    "$HUB" --dir "$hub_dir" --config "$d/hub.conf" serve >"$d/hub.log" 2>&1 &
    HUB_PID=$!
    wait_http "https://127.0.0.1:$port/" "$HUB_PID" && break
    kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=
    tries=$((tries + 1))
    [ $tries -lt 5 ] || { cat "$d/hub.log" >&2; die "the hub did not start"; }
  done
  local url="https://127.0.0.1:$port"

  # An ambulance service's 111 tablet: scope all, urgent care (every published plan).
  local code; code=$("$HUB" --dir "$hub_dir" device add bench-tablet --scope all --role urgent_care | tail -n 1)
  "$AGENT" --dir "$dev" init --user crew --role urgent_care >/dev/null
  "$AGENT" --dir "$dev" enroll --hub "$url" --code "$code" --ca "$CA" --name bench-tablet >/dev/null
  # A second tablet for the whole-process initial sync (cmc-agent sync, timed from outside).
  local dev2="$d/device2"
  code=$("$HUB" --dir "$hub_dir" device add bench-tablet-2 --scope all --role urgent_care | tail -n 1)
  "$AGENT" --dir "$dev2" init --user crew --role urgent_care >/dev/null
  "$AGENT" --dir "$dev2" enroll --hub "$url" --code "$code" --ca "$CA" --name bench-tablet-2 >/dev/null

  say "$n plans: initial sync (one process: PIN unlock, then the sync)"
  /usr/bin/time -f '{"max_rss_kib": %M, "wall_s": %e}' -o "$r/initial-time.json" \
    "$DRV" initial "$dev" >"$r/initial.json"
  local rb=0 f
  for f in "$dev"/replica.db "$dev"/replica.db-wal; do
    [ -f "$f" ] && rb=$(( rb + $(stat -c %s "$f") ))
  done
  echo "{\"replica_bytes\": $rb}" >"$r/replica.json"

  say "$n plans: $ROUNDS rounds of $CHANGES changed plans inside one agent, then idle polls"
  "$DRV" rounds "$dev" "$hub_dir" "$ROUNDS" "$CHANGES" >"$r/rounds.json"

  say "$n plans: $PROC_ROUNDS rounds of $CHANGES changed plans, each a whole 'cmc-agent sync' process"
  hub_change() { "$DRV" change "$hub_dir" "$CHANGES" "$1"; }
  whole sync100 "$PROC_ROUNDS" 0 hub_change "$AGENT" --dir "$dev" sync --json
  jq '{n, p50, p99, samples_ms}' "$r/proc-sync100.json" >"$r/process.json"

  say "$n plans: whole processes: initial sync (second tablet), idle sync, status, lookup"
  local cpu0 cpu1
  cpu0=$(hub_cpu)
  whole initial 1 0 "" "$AGENT" --dir "$dev2" sync --json
  cpu1=$(hub_cpu)
  jq --argjson cpu "$(echo "$cpu1 - $cpu0" | bc -l)" '. + {hub_cpu_s: $cpu}' "$r/proc-initial.json" >"$r/proc-initial.tmp"
  mv "$r/proc-initial.tmp" "$r/proc-initial.json"
  whole idle "$PROC_ROUNDS" 0 "" "$AGENT" --dir "$dev" sync --json
  whole status "$PROC_ROUNDS" 0 "" "$AGENT" --dir "$dev" status --json
  local nhs_pair nhs_hit nhs_miss
  nhs_pair=$("$DRV" nhs "$hub_dir")
  nhs_hit=$(echo "$nhs_pair" | sed -n 1p); nhs_miss=$(echo "$nhs_pair" | sed -n 2p)
  whole lookup "$PROC_ROUNDS" 0 "" "$AGENT" --dir "$dev" lookup --json "$nhs_hit"
  whole lookup_miss "$PROC_ROUNDS" 3 "" "$AGENT" --dir "$dev" lookup --json "$nhs_miss"

  say "$n plans: lookups by NHS number"
  "$DRV" lookup "$dev" "$hub_dir" 100000 >"$r/lookup.json"

  say "$n plans: idle polls from 64 devices on 8 threads for 5 s"
  "$DRV" load "$hub_dir" "$url" 64 8 5 >"$r/load.json"

  if [ -n "$LINKS" ] && in_list "$n" "$LINK_SCALES"; then run_links_cmc "$n" "$hub_dir" "$port"; fi
  if [ "$FLEET" -gt 0 ] && in_list "$n" "$FLEET_SCALES"; then run_fleet "$n" "$hub_dir" "$url"; fi
  # the hub's peak memory over the whole scale (every phase above)
  awk '/VmHWM/ { print "{\"hub_peak_rss_kib\": " $2 "}" }' "/proc/$HUB_PID/status" >"$r/hub.json"

  kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=

  if [ "$PEER_ON" = 1 ]; then run_peer "$n" "$d" "$r"; fi
}

run_peer() {
  local n=$1 d=$2 r=$3 p="$2/peer"
  mkdir -p "$p/server"
  say "$n plans: the peer - the same plans as JSON into pouchdb-server"
  "$DRV" export "$d/hub" >"$p/plans.ndjson" 2>/dev/null
  local port tries=0
  while :; do
    port=$(free_port)
    (cd "$p/server" && exec node "$HERE/node_modules/pouchdb-server/bin/pouchdb-server" --host 127.0.0.1 \
       --port "$port" --dir "$p/server" --no-stdout-logs >"$p/server.log" 2>&1) &
    PEER_PID=$!
    wait_http "http://127.0.0.1:$port/" "$PEER_PID" && break
    kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
    tries=$((tries + 1))
    if [ $tries -ge 3 ]; then
      echo "peer skipped at $n plans: pouchdb-server did not start ($(tail -n 1 "$p/server.log"))" >&2
      return 0
    fi
  done
  local url="http://127.0.0.1:$port"
  node "$HERE/peer.js" load "$url" plans "$p/plans.ndjson" >"$r/peer-load.json"
  say "$n plans: the peer - PouchDB initial replication, default batch (100)"
  /usr/bin/time -f '{"max_rss_kib": %M, "wall_s": %e}' -o "$r/peer-pull-default-time.json" \
    node "$HERE/peer.js" pull "$url" plans "$p/local-default" 0 >"$r/peer-pull-default.json"
  say "$n plans: the peer - PouchDB initial replication, batch_size 1000"
  /usr/bin/time -f '{"max_rss_kib": %M, "wall_s": %e}' -o "$r/peer-pull-1000-time.json" \
    node "$HERE/peer.js" pull "$url" plans "$p/local-1000" 1000 >"$r/peer-pull-1000.json"
  say "$n plans: the peer - $ROUNDS rounds of $CHANGES changed documents, idle replications, gets"
  node "$HERE/peer.js" rounds "$url" plans "$p/local-1000" 1000 "$ROUNDS" "$CHANGES" 20000 >"$r/peer-rounds.json"
  say "$n plans: the peer - $PROC_ROUNDS rounds of $CHANGES changed documents, each a whole node process"
  peer_change() { node "$HERE/peer.js" change "$url" plans "$CHANGES" "$1"; }
  whole peer_sync100 "$PROC_ROUNDS" 0 peer_change node "$HERE/peer.js" once "$url" plans "$p/local-1000" 1000
  whole peer_idle "$PROC_ROUNDS" 0 "" node "$HERE/peer.js" once "$url" plans "$p/local-1000" 1000
  if [ -n "$LINKS" ] && in_list "$n" "$LINK_SCALES"; then run_links_peer "$n" "$url" "$port" "$p"; fi
  kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
}

for n in $SCALES; do run_scale "$n"; done

# ---- results ----------------------------------------------------------------------------------
"$HERE/report.sh" "$OUT" $SCALES

# ---- the live change feed: 1,000 watching devices held, freshness (bench/live.sh) --------------
if [ "${BENCH_LIVE:-1}" = 1 ]; then
  say "the live change feed: ${LIVE_DEVICES:-1000} watching devices held (bench/live.sh)"
  BENCH_OUT="$OUT" BUILD="$BUILD" "$HERE/live.sh" || echo "bench: the live change feed's run failed (see above)" >&2
fi
