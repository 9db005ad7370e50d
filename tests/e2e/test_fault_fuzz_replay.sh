#!/usr/bin/env bash
# The fuzz corpora, replayed (H-06, H-15): every seed and every input that once crashed a fuzz
# target (kept in tests/fuzz/corpus/<target>/) goes through the target again, built without
# libFuzzer, so a fixed crash stays fixed. `make fuzz` does the actual fuzzing (clang).
. "$(dirname "$0")/lib.sh"

n=0
for dir in "$ROOT"/tests/fuzz/corpus/*/; do
  t=$(basename "$dir")
  bin="$BUILD/tests/fuzz/replay_$t"
  [ -x "$bin" ] || fail "no replay binary for $t ($bin)"
  out=$("$bin" "$dir") || fail "$t: an input of the corpus crashes the target"
  pass "$t: $out replayed"
  n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "expected five fuzz targets, found $n"
