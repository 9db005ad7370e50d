#!/usr/bin/env bash
# Runs test programs (unit: cmocka binaries; e2e: shell scripts) and prints one summary line:
# "N passed, N failed". Exits non-zero when any test failed or when there was nothing to run.
# Each program's output goes to $BUILD/test-logs/<name>.log and is shown when it fails.
set -u
kind=$1; shift
build=${BUILD:-build}
logs="$build/test-logs"
mkdir -p "$logs"
passed=0 failed=0 skipped=0 failed_names=()
if [ $# -eq 0 ]; then
  echo "$kind: no tests found" >&2
  exit 1
fi
for t in "$@"; do
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
    passed=$((passed + 1)); printf '  ok    %-40s %3ss\n' "$name" "$secs"
  elif [ $rc -eq 77 ]; then
    # exit 77: the test could not run here (it says why); never counted as a pass
    skipped=$((skipped + 1)); printf '  skip  %-40s %3ss  %s\n' "$name" "$secs" "$(grep -m1 '^skip:' "$log")"
  else
    failed=$((failed + 1)); failed_names+=("$name")
    printf '  FAIL  %-40s %3ss (exit %s)\n' "$name" "$secs" "$rc"
    sed 's/^/      | /' "$log" | tail -n 60
  fi
done
echo "$passed $failed $skipped" > "$logs/summary-$kind"
echo "$kind: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
