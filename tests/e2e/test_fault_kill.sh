#!/usr/bin/env bash
# kill -9 loops (H-14): the agent is killed at each named crash point of apply and at random
# moments during the initial sync of a region (thousands of plans at the hub, hundreds in
# scope, small pages). After every kill the replica passes its integrity check and holds
# exactly what the hub's pages up to the committed cursor hold; the next sync resumes.
# Iterations: 30 in `make check`, CMC_KILL_ITERATIONS (default 200) under CMC_TORTURE.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
ITER=30
[ -n "${CMC_TORTURE:-}" ] && ITER=${CMC_KILL_ITERATIONS:-200}
export CMC_PAGE_BUDGET=49152
# Three pages to a transaction, whatever the machine's speed: every device commits at the
# same cursors as the reference, so each commit is a boundary in its map.
export CMC_GROUP_BYTES=147456 CMC_GROUP_MS=none
hub_init
hub seed --plans 4000 --seed 7 >/dev/null
start_hub

snaphash() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort | sha256sum | cut -c1-16; }
cursor_of() { agent "$1" status --json | jq -r .cursor; }

# The hub's view at every page boundary: a reference device killed right after each commit
# steps through the pages one at a time.
REF="$E2E_TMP/ref"
new_device "$REF" ref "region:$REGION" urgent_care urgent_care
MAP="$E2E_TMP/map"
echo "0 $(snaphash "$REF")" >"$MAP"
prev=0
for _ in $(seq 1 500); do
  # (in a subshell, so the shell's "Killed" notice goes nowhere)
  set +e; (CMC_TEST_CRASH_POINT=apply:after-commit "$AGENT" --dir "$REF" sync >/dev/null 2>&1) 2>/dev/null; set -e
  c=$(cursor_of "$REF")
  [ "$c" -ne "$prev" ] || break
  echo "$c $(snaphash "$REF")" >>"$MAP"
  prev=$c
done
expect_exit 0 agent "$REF" sync
FINAL=$(cursor_of "$REF")
[ "$FINAL" -eq "$prev" ] || fail "the reference did not step through every page ($prev vs $FINAL)"
PAGES=$(wc -l <"$MAP")
[ "$PAGES" -gt 5 ] || fail "expected many pages, got $PAGES"

POINTS=(apply:begin apply:mid-ops apply:before-commit apply:after-commit random random)
n=0 dev_n=0 DEV= kills=0
declare -A seen
for i in $(seq 1 "$ITER"); do
  if [ -z "$DEV" ] || [ "$(cursor_of "$DEV")" -eq "$FINAL" ]; then
    dev_n=$((dev_n + 1)); DEV="$E2E_TMP/dev$dev_n"
    new_device "$DEV" "dev$dev_n" "region:$REGION" urgent_care urgent_care
  fi
  point=${POINTS[$((RANDOM % ${#POINTS[@]}))]}
  set +e
  if [ "$point" = random ]; then
    "$AGENT" --dir "$DEV" sync >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 400)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null; rc=$?
  else
    (CMC_TEST_CRASH_POINT=$point "$AGENT" --dir "$DEV" sync >/dev/null 2>&1) 2>/dev/null; rc=$?
  fi
  set -e
  [ "$rc" -eq 137 ] && kills=$((kills + 1))
  [ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || fail "[$i $point] unexpected exit $rc"
  expect_exit 0 agent "$DEV" verify
  c=$(cursor_of "$DEV")
  want=$(awk -v c="$c" '$1 == c { print $2 }' "$MAP")
  [ -n "$want" ] || fail "[$i $point] cursor $c is not a page boundary"
  [ "$(snaphash "$DEV")" = "$want" ] || fail "[$i $point] the replica at cursor $c differs from the hub's pages"
  seen[$point]=1
  n=$((n + 1))
done
expect_exit 0 agent "$DEV" sync
[ "$(snaphash "$DEV")" = "$(awk -v c="$FINAL" '$1 == c { print $2 }' "$MAP")" ] || fail "the last device did not complete"
# A device killed while pages it fetched ahead were unproven names only its committed cursor
# as proof: the hub must never take such a kill for a replica restored from an older copy.
rollbacks=$(hub device list --json | jq '[.[].rollbacks] | add')
[ "$rollbacks" -eq 0 ] || fail "the hub counted $rollbacks kills as restored replicas"
pass "$n kill -9 iterations ($kills killed, ${#seen[@]} kinds, $dev_n devices, $PAGES page boundaries): every replica verified at a page boundary"
