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
WORK=$(mktemp -d /tmp/cmc-bench-XXXXXX)
export CMC_PIN=bench-4711-pin   # benchmark-only PIN; the key slot still uses production Argon2id
unset CMC_USER CMC_AGENT_DIR CMC_HUB_DIR

HUB_PID=
PEER_PID=
cleanup() {
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi
  if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
now_ns() { date +%s%N; }

for tool in jq /usr/bin/time; do command -v "$tool" >/dev/null || die "$tool is needed (apt-get install jq time)"; done
make --no-print-directory -C "$HERE/.." BUILD="$BUILD" bench-bins >/dev/null || die "building the benchmark driver failed"
mkdir -p "$OUT"

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 40000 ))
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
make_certs() {
  local c="$WORK/certs"
  mkdir -p "$c"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=cmc bench CA" -keyout "$c/ca.key" -out "$c/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$c/server.key" -out "$c/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
    >"$c/ext.cnf"
  openssl x509 -req -in "$c/server.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/ext.cnf" -out "$c/server.pem" 2>/dev/null
  chmod 600 "$c"/*.key
}
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
    # The benchmark's own settings file: HTTPS, and room for the 64 polling devices on one
    # address (the built-in per-address limit, 32, stays the default for everyone else).
    cat >"$d/hub.conf" <<EOF_CONF
listen = 127.0.0.1:$port
tls_cert = $WORK/certs/server.pem
tls_key = $WORK/certs/server.key
per_ip_connections = 128
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
  whole initial 1 0 "" "$AGENT" --dir "$dev2" sync --json
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
  kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
}

for n in $SCALES; do run_scale "$n"; done

# ---- results ----------------------------------------------------------------------------------
"$HERE/report.sh" "$OUT" $SCALES
