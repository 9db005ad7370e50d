#!/usr/bin/env bash
# Power loss and full disk under SQLCipher (H-14): tests/fault/powerloss cuts the power
# at every Nth write/sync/truncate of applying signed bundles (unsynced bytes are lost), and
# fails the Nth with SQLITE_FULL. After each the replica opens, passes its integrity check,
# stands at a bundle boundary no earlier than the last commit the agent saw succeed, and takes
# the remaining bundles. A self-test first proves the harness catches a lost commit
# (synchronous=OFF must fail it).
. "$(dirname "$0")/lib.sh"

PL="$BUILD/tests/fault/powerloss"
set +e
CMC_POWERLOSS_UNSAFE=1 "$PL" --bundles 3 --plans-per-bundle 4 >"$E2E_TMP/unsafe.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "committed but only" "$E2E_TMP/unsafe.out" ||
  fail "the harness did not catch commits lost without syncs: $(cat "$E2E_TMP/unsafe.out")"
pass "self-test: with synchronous=OFF a power cut loses a commit and the harness says so"

if [ -n "${CMC_TORTURE:-}" ]; then
  "$PL" --bundles 8 --plans-per-bundle 6 --stride 1 | tee "$E2E_TMP/pl.out"
else
  "$PL" --bundles 3 --plans-per-bundle 4 --stride 2 | tee "$E2E_TMP/pl.out"
fi
grep -q "all consistent" "$E2E_TMP/pl.out" || fail "power-loss loop"
pass "$(cat "$E2E_TMP/pl.out")"
