#!/usr/bin/env bash
# The hardened pass of `make check` (docs/TESTING.md): every unit and end-to-end test again,
# built with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included) into its
# own build directory, then valgrind (memcheck, leaks) over every unit test program and the
# out-of-memory loop of the normal build, JOBS at a time, while the sanitized end-to-end
# scripts run. Ends with "hardened: N passed, N failed".
#   usage: BUILD=build ASAN_BUILD=build-asan scripts/check-hardened.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
passed=0 failed=0
start=$(date +%s)

# Sanitizers: stop at the first report; libfaketime (preloaded by the clock tests) need not
# come before the ASan runtime.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:verify_asan_link_order=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-print_suppressions=0}

rm -f "$ASAN_BUILD"/test-logs/summary-*
make --no-print-directory -j"$jobs" BUILD="$ASAN_BUILD" SANITIZE=address,undefined all fault-bins \
  $(ls tests/unit/test_*.c | sed "s#tests/unit/\(.*\)\.c#$ASAN_BUILD/tests/\1#") >"$ASAN_BUILD.build.log" 2>&1 ||
  { tail -n 30 "$ASAN_BUILD.build.log"; echo "hardened: 0 passed, 1 failed"; exit 1; }
make --no-print-directory BUILD="$ASAN_BUILD" SANITIZE=address,undefined unit

# valgrind over the normal build's unit tests (the out-of-memory loop runs under valgrind in
# make torture: here LeakSanitizer checks its failure paths in the sanitized e2e pass, and
# under valgrind it alone took eight minutes of the two cores)
make --no-print-directory -j"$jobs" BUILD="$BUILD" fault-bins \
  $(ls tests/unit/test_*.c | sed "s#tests/unit/\(.*\)\.c#$BUILD/tests/\1#") >"$BUILD.valgrind-build.log" 2>&1 ||
  { tail -n 30 "$BUILD.valgrind-build.log"; failed=$((failed + 1)); }
mkdir -p "$BUILD/test-logs"
# valgrind_one PROGRAM: one memcheck run; its line, and "0" or "1" in $vg_results/<name>.
vg_results=$(mktemp -d "${TMPDIR:-/tmp}/cmc-valgrind-XXXXXX")
trap 'rm -rf "$vg_results"' EXIT
valgrind_one() {
  local t=$1 name log t0
  name=$(basename "$t")
  log="$BUILD/test-logs/valgrind-$name.log"
  t0=$(date +%s)
  local rc=0
  CMC_TEST_MEMCHECK=1 timeout 1200 valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    --track-origins=no -q "$t" >"$log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo 0 >"$vg_results/$name"; printf '  ok    valgrind %-32s %4ss\n' "$name" "$(( $(date +%s) - t0 ))"
  elif [ "$rc" -eq 77 ]; then # it needs PostgreSQL (unit-pg runs it, sanitized); never a pass
    echo 2 >"$vg_results/$name"; printf '  skip  valgrind %-32s (%s)\n' "$name" "$(head -n 1 "$log")"
  else
    echo 1 >"$vg_results/$name"
    { printf '  FAIL  valgrind %-32s (see %s)\n' "$name" "$log"
      grep -E '==[0-9]+== (Invalid|Conditional|Use of|[0-9,]+ bytes in)|definitely lost|ERROR SUMMARY|FAIL' "$log" |
        head -n 20 | sed 's/^/      | /'; } | cat
  fi
}
# the longest first, so that the two cores finish together
valgrind_pass() {
  local running=0 t
  for t in $(ls -S "$BUILD"/tests/test_* 2>/dev/null); do
    [ -x "$t" ] || continue
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    valgrind_one "$t" &
    running=$((running + 1))
  done
  wait
}
# valgrind (CPU) runs while the sanitized end-to-end scripts (mostly waiting on the processes
# they drive) run; its lines are shown after them.
valgrind_pass >"$BUILD/test-logs/valgrind-pass.out" 2>&1 &
vg_pid=$!
make --no-print-directory BUILD="$ASAN_BUILD" SANITIZE=address,undefined e2e
wait "$vg_pid"
cat "$BUILD/test-logs/valgrind-pass.out"
for s in "$ASAN_BUILD"/test-logs/summary-*; do
  read -r p f _ <"$s"; passed=$((passed + p)); failed=$((failed + f))
done
skipped=0
for r in "$vg_results"/*; do
  case "$(cat "$r")" in
    0) passed=$((passed + 1)) ;;
    2) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "$passed $failed $skipped" >"$BUILD/test-logs/summary-hardened"
echo "hardened: $passed passed, $failed failed, $skipped skipped ($(( $(date +%s) - start ))s)"
[ "$failed" -eq 0 ]
