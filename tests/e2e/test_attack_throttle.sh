#!/usr/bin/env bash
# Guessing PINs through the program, as an attacker on the device would: the throttle counts
# attempts and makes each one cost more Argon2id work; it reads no clock, so libfaketime
# cannot speed it up; the count is kept in the key slot as well, so deleting the throttle
# file does not reset it; parallel guesses wait for each other and each one counts. Every
# check counts the derivations an attempt ran (the agent's debug log), never a duration.
#   - a PIN shorter than the minimum is refused at init and at user add;
#   - 6 wrong PINs, each under a clock faked further ahead: the work grows with the count;
#   - the throttle file deleted: the count goes on;
#   - the right PIN: works, says how many wrong PINs came before, and resets the count;
#   - 20 wrong PINs in parallel: the count moves by exactly 20.
. "$(dirname "$0")/lib.sh"

FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is not installed (apt: faketime; scripts/install-deps.sh)"
NHS=9434765919
DEV="$E2E_TMP/dev"

# PIN policy at init and user add
expect_exit 2 env CMC_PIN=1234567 "$AGENT" --dir "$E2E_TMP/short" init --user crew --role clinician
last_err | grep -q "at least 8 characters" || fail "a short PIN was not refused with the rule: $(last_err)"
[ ! -e "$E2E_TMP/short/keyslots" ] || fail "a refused init left a key-slot file"
expect_exit 0 agent "$DEV" init --user crew --role clinician
expect_exit 2 env CMC_NEW_PIN=short "$AGENT" --dir "$DEV" user add temp --role urgent_care
last_err | grep -q "at least 8 characters" || fail "user add: a short PIN was not refused: $(last_err)"
pass "PINs shorter than 8 characters are refused at init and user add"

# guess NAME [faketime spec]: one wrong PIN; records the failures on record and the extra
# derivations the attempt ran, from the debug log.
guess() {
  local fake=${1:-}
  set +e
  if [ -n "$fake" ]; then
    LD_PRELOAD="$FAKETIME_LIB" FAKETIME="$fake" CMC_LOG=debug CMC_PIN=wrong-pin-0000 \
      "$AGENT" --dir "$DEV" lookup $NHS >/dev/null 2>"$E2E_TMP/guess.err"
  else
    CMC_LOG=debug CMC_PIN=wrong-pin-0000 "$AGENT" --dir "$DEV" lookup $NHS >/dev/null 2>"$E2E_TMP/guess.err"
  fi
  local rc=$?
  set -e
  [ $rc -eq 4 ] || { cat "$E2E_TMP/guess.err" >&2; fail "a wrong PIN exited $rc, not 4"; }
  ON_RECORD=$(sed -n 's/.*unlock: \([0-9]*\) failed attempts on record; \([0-9]*\) extra.*/\1/p' "$E2E_TMP/guess.err")
  WORK=$(sed -n 's/.*unlock: \([0-9]*\) failed attempts on record; \([0-9]*\) extra.*/\2/p' "$E2E_TMP/guess.err")
  [ -n "$ON_RECORD" ] && [ -n "$WORK" ] || { cat "$E2E_TMP/guess.err" >&2; fail "no unlock debug line"; }
}

# 1. A clock faked further ahead at every attempt (the old bypass: wait out the delay in
#    fake time) changes nothing: attempt n runs max(0, n - 2) extra derivations.
for n in 0 1 2 3 4 5; do
  guess "+$(( (n + 1) * 400 ))d"
  [ "$ON_RECORD" = "$n" ] || fail "attempt $((n + 1)) under a faked clock: $ON_RECORD failures on record, want $n"
  want=$(( n >= 3 ? n - 2 : 0 ))
  [ "$WORK" = "$want" ] || fail "attempt $((n + 1)) under a faked clock ran $WORK extra derivations, want $want"
done
guess "-3650d"
[ "$ON_RECORD" = 6 ] && [ "$WORK" = 4 ] || fail "a clock wound back: $ON_RECORD on record, $WORK extra"
pass "a faked clock (ahead or back) neither resets the count nor lowers the work: 7 attempts, work 0,0,0,1,2,3,4"

# 2. Deleting the throttle file does not reset the count kept in the key slot.
rm -f "$DEV/keyslots.throttle"
guess
[ "$ON_RECORD" = 7 ] && [ "$WORK" = 5 ] || fail "after deleting the throttle file: $ON_RECORD on record, $WORK extra"
pass "deleting keyslots.throttle does not reset the count (7 on record, 5 extra derivations)"

# 3. The right PIN opens, says what happened, and resets.
expect_exit 3 agent "$DEV" lookup $NHS
last_err | grep -q "8 wrong PIN attempts since your last unlock" || fail "the user was not told: $(last_err)"
guess
[ "$ON_RECORD" = 0 ] && [ "$WORK" = 0 ] || fail "after a good unlock: $ON_RECORD on record"
pass "the right PIN still opens, reports 8 wrong attempts, and resets the count"

# 4. 20 wrong PINs at once: they queue on the slot file's lock and every one counts.
pids=()
for i in $(seq 1 20); do
  CMC_PIN=wrong-pin-$i "$AGENT" --dir "$DEV" lookup $NHS >/dev/null 2>"$E2E_TMP/par-$i.err" &
  pids+=($!)
done
bad=0
for p in "${pids[@]}"; do
  set +e; wait "$p"; rc=$?; set -e
  [ $rc -eq 4 ] || bad=$((bad + 1))
done
[ $bad -eq 0 ] || fail "$bad of 20 parallel wrong PINs did not exit 4"
guess
[ "$ON_RECORD" = 21 ] || fail "20 parallel wrong PINs moved the count from 1 to $ON_RECORD, want 21"
[ "$WORK" = 19 ] || fail "after 21 failures the next attempt ran $WORK extra derivations, want 19"
pass "20 parallel wrong PINs moved the count by 20 (each serialised and counted)"
