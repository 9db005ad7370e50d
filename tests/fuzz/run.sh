#!/usr/bin/env bash
# Runs libFuzzer targets (built by `make fuzz` into $BUILD/tests/fuzz/) for FUZZ_SECONDS each,
# starting from a working copy of tests/fuzz/corpus/<target>/ (the repository's corpus is
# not touched: new interesting inputs stay in $BUILD/fuzz-corpus/). A crash is saved under
# $BUILD/crashes/<target>/ and fails the run. Prints one line per target with its execution
# count, and "fuzz: N passed, N failed".
#   usage: BUILD=build-fuzz FUZZ_SECONDS=60 tests/fuzz/run.sh fuzz_bundle fuzz_plan_mp ...
set -u
build=${BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
passed=0 failed=0
mkdir -p "$build/test-logs"
for t in "$@"; do
  bin="$build/tests/fuzz/$t"
  work="$build/fuzz-corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$work" "$crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="$build/test-logs/$t.fuzz.log"
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$work" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    printf '  ok    %-18s %10s executions in %ss, corpus %s files\n' "$t" "${execs:-?}" "$secs" "$(ls "$work" | wc -l)"
  else
    failed=$((failed + 1))
    printf '  FAIL  %-18s exit %s after %s executions; artifacts in %s\n' "$t" "$rc" "${execs:-?}" "$crashes"
    grep -m 20 -E 'ERROR|SUMMARY|==[0-9]+==|#[0-9]+ 0x' "$log" | sed 's/^/      | /'
  fi
done
echo "$passed $failed" >"$build/test-logs/summary-fuzz"
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
