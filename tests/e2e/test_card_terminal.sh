#!/usr/bin/env bash
# End to end, in a real terminal (tmux): plan text cannot rewrite what the crew's screen says.
#
# The hub and the device refuse control characters, bidirectional overrides and invisible
# characters in plan text (sync/text.h), and every plan version on the device carries the
# hub's seal. This test:
#   - imports hostile text at the hub: refused, naming the field (exit 2);
#   - plants it in the device's replica directly (bypassing every validator): `lookup` refuses
#     the altered plan by its seal (exit 1) and prints nothing of it;
#   - shows the terminal printer's output for the same hostile text (card_print_terminal,
#     the printer `lookup` uses, given the text by the card model's own test) in a 100x40
#     tmux pane: a ceiling-of-treatment text that moves the cursor up over the CPR line and
#     writes "FOR CPR - attempt CPR" there, clears the first line and sets the window title,
#     and a preferred name with U+202E (right-to-left override).
# The screen must show the true CPR decision, the banner as printed, the hostile text only as
# visible markers ("^[", "<U+202E>"), and the title unchanged.
. "$(dirname "$0")/lib.sh"

command -v tmux >/dev/null || { echo "skip: tmux is not installed (scripts/install-deps.sh installs it)"; exit 77; }
REGION=south-east-london
NHS_A=9434765919
SQL="$BUILD/tests/tools/replica_sql"
[ -x "$SQL" ] || fail "build the test tools first (make e2e builds $SQL)"

# ---- the hub refuses hostile text at intake ------------------------------------------------------
hub_init_users
jq '.ceiling_of_treatment = "Comfort\u001b[2A\r 2 CPR  FOR CPR - attempt CPR"' "$SHARED/examples/plan.json" \
  >"$E2E_TMP/hostile.json"
expect_exit 2 hub plan import "$E2E_TMP/hostile.json" --as nurse1
last_err | grep -q "ceiling_of_treatment" || fail "the refusal should name the field: $(last_err)"
[ "$(wc -l <"$E2E_TMP/last.err")" -eq 1 ] || fail "one line expected: $(last_err)"
last_err | grep -q "FOR CPR" && fail "the refusal should not repeat the text"
jq '.patient.preferred_name = "Mag\u202egie"' "$SHARED/examples/plan.json" >"$E2E_TMP/bidi.json"
expect_exit 2 hub plan import "$E2E_TMP/bidi.json" --as nurse1
last_err | grep -q "patient.preferred_name.*bidirectional" || fail "a bidi override should be refused: $(last_err)"
pass "the hub refuses control and bidi characters in plan text, naming the field (exit 2)"

# ---- a replica written before the check ----------------------------------------------------------
A=$(publish_file "$SHARED/examples/plan.json")
# namesakes: 24 more Okafors (a cut search list), one of them O'Brien with a phone's apostrophe
nhs_valid() { # 9 digits -> the 10-digit NHS number, or nothing when the check digit would be 10
  local d=$1 sum=0 i
  for i in 0 1 2 3 4 5 6 7 8; do sum=$((sum + ${d:$i:1} * (10 - i))); done
  local c=$(( (11 - sum % 11) % 11 ))
  [ $c -ne 10 ] && echo "$d$c"
}
made=0 k=0
while [ $made -lt 24 ]; do
  k=$((k + 1))
  nhs=$(nhs_valid $((900100000 + k * 37))) || continue
  family=Okafor
  [ $made -eq 0 ] && family="O$(printf '\342\200\231')Brien"
  jq --arg nhs "$nhs" --arg id "$(printf '00000000-0000-4000-8000-%012d' $k)" --arg f "$family" \
    '.nhs_number = $nhs | .plan_id = $id | .patient.family_name = $f' "$SHARED/examples/plan.json" >"$E2E_TMP/ns.json"
  id=$(hub plan import "$E2E_TMP/ns.json" --as nurse1 | tail -n 1)
  hub plan submit "$id" --as nurse1 >/dev/null
  hub plan approve "$id" --as gp1 >/dev/null
  made=$((made + 1))
done
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync
stop_hub

# ---- honest search -----------------------------------------------------------------------------
expect_exit 0 agent "$TABLET" search --name okafor --json
[ "$(jget .shown)" -eq 20 ] && [ "$(jget .total)" -eq 24 ] || fail "search should say 20 shown of 24: $(last_out)"
jget .message | grep -qx "showing 20 of 24 - add date of birth or postcode" || fail "search words: $(last_out)"
expect_exit 0 agent "$TABLET" search --name okafor
last_err | grep -q "showing 20 of 24 - add date of birth or postcode" || fail "the cut list should be said: $(last_err)"
[ "$(last_out | wc -l)" -eq 20 ] || fail "20 rows expected"
expect_exit 0 agent "$TABLET" search --name "o'brien" --json
[ "$(jget .total)" -eq 1 ] && [ "$(jget .message)" = "null" ] || fail "o'brien should find O\u2019Brien: $(last_out)"
expect_exit 0 agent "$TABLET" search --name OBrien --json
[ "$(jget .total)" -eq 1 ] || fail "OBrien should find O\u2019Brien: $(last_out)"
pass "search says 'showing 20 of 24' (text and --json) and folds apostrophes"

# Same-length replacements inside the stored msgpack body keep it well formed.
OLD_CEIL="Treat reversible causes at home; avoid admission unless symptoms cannot be controlled."
# ESC ] 2 ; OWNED BEL (title), ESC [ 3 A CR (up over the CPR line), the forged line, ESC [ K,
# ESC [ H ESC [ 2 K (home, clear the banner's first line)
EVIL=$(printf '\033]2;OWNED\007\033[3A\r 2 CPR          FOR CPR - attempt CPR\033[K\033[H\033[2K')
while [ ${#EVIL} -lt ${#OLD_CEIL} ]; do EVIL="$EVIL "; done
[ ${#EVIL} -eq ${#OLD_CEIL} ] || fail "the planted text must keep the body's length"
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
poison() {
  CMC_USER=tablet-user "$SQL" "$TABLET" \
    "UPDATE plan_versions SET body = unhex(replace(hex(body), upper('$(hex "$1")'), upper('$(hex "$2")')))" \
    >/dev/null || fail "could not plant the text in the replica"
}
poison "$OLD_CEIL" "$EVIL"
poison "Maggie" "$(printf 'M\342\200\256ie')"   # U+202E (3 bytes) for "agg": the same 6 bytes
CMC_USER=tablet-user "$SQL" "$TABLET" "SELECT count(*) FROM plan_versions WHERE instr(body, X'1b5b3341') > 0" \
  >"$E2E_TMP/planted" || fail "replica_sql"
[ "$(cat "$E2E_TMP/planted")" -ge 1 ] || fail "the hostile text did not reach the replica"

# A plan altered at rest no longer carries the hub's seal: the device refuses to show it
# (one line, exit 1) rather than print what was planted.
expect_exit 1 agent "$TABLET" lookup $NHS_A
last_err | grep -q "failed its integrity check - do not rely on it; ask the hub" ||
  fail "an altered plan should be refused by its seal: $(last_err)"
LC_ALL=C grep -q "$(printf '\033')" "$E2E_TMP/last.out" "$E2E_TMP/last.err" && fail "a raw ESC reached the output"
pass "a plan with text planted in the replica is refused by its seal (exit 1), nothing of it printed"
# The terminal printer itself, given the same hostile text (as the card model's own test
# builds it, bypassing every validator): what the terminal must show, line for line.
CARD_PAGES="$E2E_TMP/card-pages"
mkdir -p "$CARD_PAGES"
[ -x "$BUILD/tests/test_agent_card" ] || fail "build/tests/test_agent_card is missing: make $BUILD/tests/test_agent_card"
CMC_CARD_PAGES_DIR="$CARD_PAGES" "$BUILD/tests/test_agent_card" >"$E2E_TMP/card-pages.out" 2>&1 ||
  { cat "$E2E_TMP/card-pages.out"; fail "the card model's test failed while writing the cards"; }
cp "$CARD_PAGES/card-hostile.txt" "$E2E_TMP/card.txt"
grep -q '\^\[\[3A' "$E2E_TMP/card.txt" || fail "the control sequence should be shown as a visible marker"
grep -q '<U+202E>' "$E2E_TMP/card.txt" || fail "the bidi override should be shown as a visible marker"
LC_ALL=C grep -q "$(printf '\033')" "$E2E_TMP/card.txt" && fail "a raw ESC reached the printed card"
LC_ALL=C grep -q "$(printf '\342\200\256')" "$E2E_TMP/card.txt" && fail "a raw U+202E reached the printed card"
# ---- in a real terminal -------------------------------------------------------------------------
SOCK="$E2E_TMP/tmux.sock"
tmux_() { tmux -S "$SOCK" "$@"; }
trap 'tmux -S "$SOCK" kill-server 2>/dev/null || true; e2e_cleanup' EXIT
tmux_ new-session -d -s card -x 100 -y 40 \
  "printf '\\033]2;crew-terminal\\007'; head -n 30 '$E2E_TMP/card.txt'; echo LOOKUP-DONE; sleep 60"
for i in $(seq 1 100); do
  tmux_ capture-pane -p -t card >"$E2E_TMP/screen.txt"
  grep -q LOOKUP-DONE "$E2E_TMP/screen.txt" && break
  sleep 0.1
done
grep -q LOOKUP-DONE "$E2E_TMP/screen.txt" || fail "the lookup did not finish in the terminal: $(cat "$E2E_TMP/screen.txt")"
title=$(tmux_ display-message -p -t card '#{pane_title}')
[ "$title" != "OWNED" ] || fail "plan text set the terminal's title"
grep -q "DNACPR - do NOT attempt CPR" "$E2E_TMP/screen.txt" ||
  fail "the true CPR decision is not on the screen: $(cat "$E2E_TMP/screen.txt")"
while IFS= read -r line; do
  case "$line" in
    *"FOR CPR - attempt CPR"*) case "$line" in *'^['*|*'^M'*) ;; *) fail "a forged CPR line is on the screen: $line" ;; esac ;;
  esac
done <"$E2E_TMP/screen.txt"
# the banner as printed: the screen's first lines are the card's first lines
for n in 1 2 3; do
  want=$(sed -n "${n}p" "$E2E_TMP/card.txt" | sed 's/[[:space:]]*$//')
  got=$(sed -n "${n}p" "$E2E_TMP/screen.txt" | sed 's/[[:space:]]*$//')
  [ -n "$want" ] && [ "$got" = "$want" ] || fail "line $n of the screen was changed: '$got' (want '$want')"
done
grep -q '<U+202E>' "$E2E_TMP/screen.txt" || fail "the bidi override should be visible on the screen"
pass "in a real terminal the CPR line is the true one, the banner stays, no title is set"
