#!/usr/bin/env bash
# bench/report.sh OUT SCALE...: gathers bench/run.sh's per-scale files into OUT/results.json,
# prints the table with the peer's figures and the ratios, checks the targets (reported, never
# asserted: a miss does not fail `make bench`), and draws OUT/bench-scaling.png with gnuplot
# when it is installed.
set -euo pipefail
OUT=$1; shift
SCALES="$*"
HERE=$(cd "$(dirname "$0")" && pwd)

file_or_null() { if [ -s "$1" ]; then cat "$1"; else echo null; fi; }

# Every PREFIX-NAME.json of a scale as one object keyed by NAME (proc-: whole-process runs,
# link-: shaped-link runs).
runs_json() {
  local f first=1
  echo '{'
  for f in "$1/$2"-*.json; do
    [ -s "$f" ] || continue
    [ $first = 1 ] || echo ','
    first=0
    printf '"%s": ' "$(basename "$f" .json | sed "s/^$2-//")"
    cat "$f"
  done
  echo '}'
}

scale_json() {
  local r="$OUT/scale-$1"
  jq -n --argjson n "$1" \
    --argjson whole "$(runs_json "$r" proc)" \
    --argjson links "$(runs_json "$r" link)" \
    --argjson seed "$(file_or_null "$r/seed.json")" \
    --argjson initial "$(file_or_null "$r/initial.json")" \
    --argjson initial_time "$(file_or_null "$r/initial-time.json")" \
    --argjson replica "$(file_or_null "$r/replica.json")" \
    --argjson rounds "$(file_or_null "$r/rounds.json")" \
    --argjson process "$(file_or_null "$r/process.json")" \
    --argjson lookup "$(file_or_null "$r/lookup.json")" \
    --argjson load "$(file_or_null "$r/load.json")" \
    --argjson fleet "$(file_or_null "$r/fleet.json")" \
    --argjson hubmem "$(file_or_null "$r/hub.json")" \
    --argjson peer_load "$(file_or_null "$r/peer-load.json")" \
    --argjson peer_default "$(file_or_null "$r/peer-pull-default.json")" \
    --argjson peer_default_time "$(file_or_null "$r/peer-pull-default-time.json")" \
    --argjson peer_1000 "$(file_or_null "$r/peer-pull-1000.json")" \
    --argjson peer_1000_time "$(file_or_null "$r/peer-pull-1000-time.json")" \
    --argjson peer_rounds "$(file_or_null "$r/peer-rounds.json")" \
    '{plans_seeded: $n, seed: $seed, initial: $initial, initial_process: $initial_time, replica: $replica,
      rounds: $rounds, process_rounds: $process, lookup: $lookup, load: $load, whole: $whole, links: $links, fleet: $fleet, hub: $hubmem,
      peer: (if $peer_default == null then null else
        {load: $peer_load, pull_default: ($peer_default + {process: $peer_default_time}),
         pull_1000: ($peer_1000 + {process: $peer_1000_time}), rounds: $peer_rounds} end)}'
}

{
  echo '{"machine": '
  jq -n --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --arg cores "$(nproc)" --arg mem "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
    --arg kernel "$(uname -r)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '{cpu: $cpu, cores: ($cores | tonumber), mem_kib: ($mem | tonumber), kernel: $kernel,
      loadavg_at_end: $load, when: $when}'
  echo ', "scales": ['
  first=1
  for n in $SCALES; do
    [ $first = 1 ] || echo ','
    first=0
    scale_json "$n"
  done
  echo ']}'
} | jq . >"$OUT/results.json"

# ---- the table --------------------------------------------------------------------------------
jq -r -f "$HERE/table.jq" "$OUT/results.json"

# ---- plot: how cost grows with the number of plans ---------------------------------------------
jq -r '.scales[] | [.plans_seeded, (.initial.sync_ms // 0) / 1000,
        (.peer.pull_1000.ms // 0) / 1000, (.rounds.delta_ms.p50 // 0), (.rounds.idle_ms.p50 // 0),
        (.lookup.warm_lookup_us.p50 // 0), (.lookup.warm_lookup_us.p99 // 0),
        (.peer.rounds.warm_get_us.p50 // 0)] | @tsv' "$OUT/results.json" >"$OUT/scaling.tsv"
if command -v gnuplot >/dev/null; then
  gnuplot -e "data='$OUT/scaling.tsv'; out='$OUT/bench-scaling.png'" "$HERE/scaling.gp" 2>"$OUT/gnuplot.log" &&
    echo "plot: $OUT/bench-scaling.png" ||
    echo "plot: gnuplot failed (see $OUT/gnuplot.log)"
else
  echo "plot: skipped (gnuplot is not installed: apt-get install gnuplot-nox)"
fi
echo "results: $OUT/results.json"
