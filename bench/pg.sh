#!/usr/bin/env bash
# bench/pg.sh - the hub on PostgreSQL beside SQLCipher (docs/BENCHMARKS.md, "PostgreSQL"):
# seeding N plans, idle polls per second from 64 devices (a thread each, 5 s) and the 100-change
# delta (10 rounds inside one agent), with 1 SQLCipher node, 1 PostgreSQL node and 2
# PostgreSQL nodes behind tests/tools/rr_forward. Everything on 127.0.0.1, a throwaway
# PostgreSQL 15 (tests/support/pg_fixture.sh), nothing left running.
#   BENCH_PG_PLANS=100000   plans seeded      BENCH_PG_PERF=1   perf record each load phase
#   BENCH_PG_RUNS="sqlite1 pg1 pg2"             which configurations
#   BENCH_PG_THREADS=64   client threads for the 64 polling devices (one each)
#   BENCH_OUT=bench/results
set -euo pipefail
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
HUB="$BUILD/cmc-hub"; AGENT="$BUILD/cmc-agent"; DRV="$BUILD/bench/cmc_bench"
RR="$BUILD/tests/tools/rr_forward"
N=${BENCH_PG_PLANS:-100000}
# 64 client threads: each device polls on its own, as 64 tablets would (8 threads took turns)
THREADS=${BENCH_PG_THREADS:-64}
OUT=${BENCH_OUT:-$HERE/results}/pg
WORK=$(mktemp -d /tmp/cmc-benchpg-XXXXXX)
export CMC_PIN=bench-4711-pin
unset CMC_USER CMC_AGENT_DIR CMC_HUB_DIR CMC_HUB_DB
PIDS=()
. "$HERE/../tests/support/pg_fixture.sh"
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  pg_fixture_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }
now_ns() { date +%s%N; }
make --no-print-directory -C "$HERE/.." BUILD="$BUILD" bench-bins "$RR" >/dev/null
mkdir -p "$OUT"
# 64 devices, each on its own kept-alive connection, all from 127.0.0.1
printf 'per_ip_connections = 256\nmax_connections = 1024\n' >"$WORK/hub.conf"
export PG_FIXTURE_FSYNC=on # durable commits, as SQLCipher's are
pg_fixture_start || { echo "bench/pg.sh: PostgreSQL could not start: $PG_FIXTURE_WHY" >&2; exit 77; }

# serve DIR: starts a node on a free port, sets SERVED_PORT. Called in this shell, never in
# $(...), so that its process is in PIDS and the cleanup stops it.
serve() {
  local port pid
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 12000 ))
    "$HUB" --dir "$1" --config "$WORK/hub.conf" serve --listen "127.0.0.1:$port" >>"$WORK/serve.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/" && { SERVED_PORT=$port; return 0; }
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "bench/pg.sh: no hub node came up (see $WORK/serve.log)" >&2
  return 1
}

# After a bulk load (the seed, an initial sync's holdings) PostgreSQL's autovacuum would
# vacuum and analyze those tables in the middle of the next measurement, and a region's hub
# is measured in its steady state, not minutes after a bulk import: vacuum and analyze first.
settle() { # settle STORE
  [ "$1" = pg ] || return 0
  local psql=psql
  [ -x "${PG_FIXTURE_BIN:-}/psql" ] && psql="$PG_FIXTURE_BIN/psql"
  "$psql" -q -X -d "$CMC_HUB_DB" -c "VACUUM (ANALYZE)" >/dev/null
}

run() { # run NAME STORE NODES
  local name=$1 store=$2 nodes=$3 d="$WORK/$1" r="$OUT/$1" t0 t1 url
  mkdir -p "$d" "$r"
  if [ "$store" = pg ]; then export CMC_HUB_DB; CMC_HUB_DB=$(pg_fixture_db "b_$name"); else unset CMC_HUB_DB; fi
  "$HUB" --dir "$d/hub" init >/dev/null
  say "$name: seeding $N plans"
  t0=$(now_ns); "$HUB" --dir "$d/hub" seed --plans "$N" --seed 42 >/dev/null; t1=$(now_ns)
  echo "{\"plans\": $N, \"seed_ms\": $(( (t1 - t0) / 1000000 ))}" >"$r/seed.json"
  settle "$store"
  local p1 p2; serve "$d/hub"; p1=$SERVED_PORT
  url="http://127.0.0.1:$p1"
  if [ "$nodes" = 2 ]; then
    mkdir -m 700 "$d/hub2"; cp "$d/hub/hub.key" "$d/hub2/"
    serve "$d/hub2"; p2=$SERVED_PORT
    "$RR" "$d/rr.port" "127.0.0.1:$p1" "127.0.0.1:$p2" & PIDS+=($!)
    for _ in $(seq 1 50); do [ -s "$d/rr.port" ] && break; sleep 0.1; done
    url="http://127.0.0.1:$(cat "$d/rr.port")"
  fi
  local code; code=$("$HUB" --dir "$d/hub" device add bench-tablet --scope all --role urgent_care | tail -n 1)
  "$AGENT" --dir "$d/dev" init --user crew --role urgent_care >/dev/null
  "$AGENT" --dir "$d/dev" enroll --hub "$url" --code "$code" --name bench-tablet >/dev/null
  say "$name: initial sync"
  "$DRV" initial "$d/dev" >"$r/initial.json"
  settle "$store"
  say "$name: 10 rounds of 100 changed plans"
  "$DRV" rounds "$d/dev" "$d/hub" 10 100 >"$r/rounds.json"
  say "$name: idle polls, 64 devices, $THREADS threads, 5 s"
  if [ -n "${BENCH_PG_PERF:-}" ]; then
    perf record -q -a -g -o "$r/perf.data" -- "$DRV" load "$d/hub" "$url" 64 "$THREADS" 5 >"$r/load.json" 2>"$r/load.err"
    perf report -i "$r/perf.data" --no-children -g none --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 25 >"$r/perf-top.txt" || true
    rm -f "$r/perf.data"
  else
    "$DRV" load "$d/hub" "$url" 64 "$THREADS" 5 >"$r/load.json"
  fi
  local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; PIDS=()
}

RUNS=${BENCH_PG_RUNS:-"sqlite1 pg1 pg2"}
for name in $RUNS; do
  case $name in sqlite1) run sqlite1 sqlite 1 ;; pg1) run pg1 pg 1 ;; pg2) run pg2 pg 2 ;; esac
done
for name in $RUNS; do
  jq -n --arg name "$name" --slurpfile s "$OUT/$name/seed.json" --slurpfile l "$OUT/$name/load.json" \
    --slurpfile r "$OUT/$name/rounds.json" \
    '{name: $name, seed_ms: $s[0].seed_ms, polls_per_s: $l[0].polls_per_s, rounds: $r[0]}'
done | tee "$OUT/summary.json"
