#!/usr/bin/env bash
# Runs test programs (unit: cmocka binaries; e2e: shell scripts) and prints one summary line:
# "N passed, N failed". Exits non-zero when any test failed or when there was nothing to run.
# Each program's output goes to $BUILD/test-logs/<name>.log and is shown when it fails.
# End-to-end scripts run TEST_JOBS at a time (default: the number of cores): each takes its own
# temporary directory and free ports, and most of their time is spent waiting on processes.
# Unit programs run one at a time.
set -u
kind=$1; shift
build=${BUILD:-build}
logs="$build/test-logs"
mkdir -p "$logs"
if [ $# -eq 0 ]; then
  echo "$kind: no tests found" >&2
  exit 1
fi
jobs=1
[ "$kind" = e2e ] && jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
results=$(mktemp -d "${TMPDIR:-/tmp}/cmc-results-XXXXXX")
trap 'rm -rf "$results"' EXIT
start_all=$(date +%s)

# run_one PROGRAM: runs it, writes "rc secs" to $results/<name> and prints its line.
run_one() {
  local t=$1 name log start rc secs
  name=$(basename "$t")
  log="$logs/$name.log"
  start=$(date +%s)
  if [ "$kind" = e2e ]; then
    BUILD="$build" timeout 900 bash "$t" >"$log" 2>&1
  else
    timeout 600 "$t" >"$log" 2>&1
  fi
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    printf '  ok    %-40s %3ss\n' "$name" "$secs"
  elif [ $rc -eq 77 ]; then
    # exit 77: the test could not run here (it says why); never counted as a pass
    printf '  skip  %-40s %3ss  %s\n' "$name" "$secs" "$(grep -m1 '^skip:' "$log")"
  else
    # one block, so that a parallel neighbour's line cannot land inside it
    { printf '  FAIL  %-40s %3ss (exit %s)\n' "$name" "$secs" "$rc"
      sed 's/^/      | /' "$log" | tail -n 60; } | cat
  fi
  echo "$rc" >"$results/$name"
}

# A script marked "# runs long" starts first, so that the run does not end on it alone (the
# browser test, last by name, was the tail). Only one is marked: two CPU-heavy scripts started
# together (the browser and the FHIR validator) slowed each other more than the tail cost.
ordered=()
if [ "$kind" = e2e ]; then
  for t in "$@"; do grep -q '^# runs long' "$t" && ordered+=("$t"); done
  for t in "$@"; do grep -q '^# runs long' "$t" || ordered+=("$t"); done
else
  ordered=("$@")
fi

running=0
for t in "${ordered[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  run_one "$t" &
  running=$((running + 1))
done
wait

passed=0 failed=0 skipped=0
for t in "$@"; do
  name=$(basename "$t")
  rc=$(cat "$results/$name" 2>/dev/null || echo 1)
  case $rc in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "$passed $failed $skipped" > "$logs/summary-$kind"
echo "$kind: $passed passed, $failed failed, $skipped skipped ($(( $(date +%s) - start_all ))s)"
[ $failed -eq 0 ]
