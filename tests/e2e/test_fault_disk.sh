#!/usr/bin/env bash
# Full disk, for real (H-14, H-03): the device's data directory sits on a small tmpfs that fills up
# during the initial sync. The sync fails with one clear line saying the disk is full, the
# replica verifies and holds only whole bundles, and once space is freed the next sync
# completes and equals an undisturbed replica. (The write-by-write version, every write of an
# apply failing in turn, is tests/fault/powerloss in test_fault_powerloss.sh.)
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "skip: mounting a tmpfs needs root; the full-disk loop of test_fault_powerloss.sh still runs"
  exit 77   # counted as skipped, never as passed
fi
REGION=south-east-london
hub_init
hub seed --plans 3000 --seed 5 >/dev/null
start_hub

SMALL="$E2E_TMP/small"
mkdir -p "$SMALL"
mount -t tmpfs -o size=6m,mode=0700 tmpfs "$SMALL" || fail "cannot mount a tmpfs"
trap 'umount -l "$SMALL" 2>/dev/null || true; e2e_cleanup' EXIT

snapshot() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort; }
REF="$E2E_TMP/ref"
new_device "$REF" ref "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$REF" sync
snapshot "$REF" >"$E2E_TMP/ref.snap"

DEV="$SMALL/dev"
new_device "$DEV" full "region:$REGION" urgent_care urgent_care
# leave about 160 KiB: enough to start, not enough for the whole region
avail=$(df --output=avail -k "$SMALL" | tail -n 1)
dd if=/dev/zero of="$SMALL/filler" bs=1k count=$((avail - 160)) status=none 2>/dev/null || true
set +e
CMC_PAGE_BUDGET=16384 "$AGENT" --dir "$DEV" sync >"$E2E_TMP/full.out" 2>"$E2E_TMP/full.err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a sync onto a full disk should fail with exit 1, got $rc: $(cat "$E2E_TMP/full.err")"
[ "$(wc -l <"$E2E_TMP/full.err")" -eq 1 ] || fail "one error line expected: $(cat "$E2E_TMP/full.err")"
grep -qi "full" "$E2E_TMP/full.err" || fail "the error should say the disk is full: $(cat "$E2E_TMP/full.err")"
msg=$(cat "$E2E_TMP/full.err")
# reading needs no space: the replica is intact and holds whole bundles only
expect_exit 0 agent "$DEV" verify
snapshot "$DEV" >"$E2E_TMP/dev.snap"
held=$(wc -l <"$E2E_TMP/dev.snap")
[ -z "$(comm -23 "$E2E_TMP/dev.snap" "$E2E_TMP/ref.snap")" ] || fail "the full-disk replica holds plans the hub never sent"
[ "$held" -lt "$(wc -l <"$E2E_TMP/ref.snap")" ] || fail "the disk should have filled before the end"
pass "disk full: '$msg'; replica intact with $held plans"

rm -f "$SMALL/filler"
expect_exit 0 agent "$DEV" sync
expect_exit 0 agent "$DEV" verify
[ "$(snapshot "$DEV")" = "$(cat "$E2E_TMP/ref.snap")" ] || fail "after space was freed the replica differs"
pass "space freed: the next sync completes"
