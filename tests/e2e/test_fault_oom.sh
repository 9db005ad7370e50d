#!/usr/bin/env bash
# Out of memory and I/O errors at every Nth call (H-14, H-16): tests/fault/oom_loop fails the Nth
# allocation (sticky, then one-shot) through bundle apply, key-slot unlock and hub request
# handling, and the Nth write / fsync of a key-slot file replace. Every failure must be a clean
# error with the state unchanged; in make check's sanitized pass LeakSanitizer also proves that
# no failure path leaks, and in make torture the loop runs under valgrind as well (memcheck:
# no read of memory a failure path left uninitialised).
. "$(dirname "$0")/lib.sh"

run=()
if [ -n "${CMC_TORTURE:-}" ] && command -v valgrind >/dev/null 2>&1; then
  run=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99)
fi
"${run[@]}" "$BUILD/tests/fault/oom_loop" >"$E2E_TMP/oom.out" 2>"$E2E_TMP/oom.err" || {
  cat "$E2E_TMP/oom.out"; grep -v "error request failed" "$E2E_TMP/oom.err" >&2
  fail "an injected failure was not handled cleanly (above)"
}
while read -r line; do pass "$line"; done <"$E2E_TMP/oom.out"
