#!/usr/bin/env bash
# End to end, real hub and agent over HTTPS on 127.0.0.1: the offline lease warns before it
# locks, and a locked copy still opens one patient's card for an authenticated user who types
# a reason (break glass):
#   - `status` and the card say "this copy locks in N days without a sync" within
#     CMC_LEASE_WARN_DAYS of the lock, and not before;
#   - a locked lookup without --break-glass shows nothing (exit 4); with a missing or too short
#     reason, or for the whole plan (`show`), it is refused (exit 2); with a wrong PIN it opens
#     nothing (exit 4);
#   - with a PIN and a reason the card is shown (CPR decision included) with break_glass and
#     the copy's age, and the view is audited as break_glass with the reason;
#   - the page offers the same on a locked copy (POST /break-glass) and keeps no session;
#   - the next sync reports it to the hub: `cmc-hub audit PLAN` and `cmc-hub audit
#     --break-glass` list it with the reason, and no patient data reaches the hub's log.
. "$(dirname "$0")/lib.sh"

command -v faketime >/dev/null || { echo "skip: faketime is not installed"; exit 77; }
# libfaketime would move the boot clock to the faked wall time, which the lease reads as a
# huge gap since the sync: keep the boot clock real, move the wall clock only.
export FAKETIME_DONT_FAKE_MONOTONIC=1
REGION=south-east-london
NHS_A=9434765919
REASON="cardiac arrest at home, no network to sync"

hub_init_users
A=$(publish_file "$SHARED/examples/plan.json")
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
DEV=$(hub device list --json | jq -r '.[] | select(.name == "tablet") | .device_id')
expect_exit 0 hub device lease "$DEV" 3
expect_exit 0 agent "$TABLET" sync

# ---- the warning before the lock ---------------------------------------------------------------
expect_exit 0 agent "$TABLET" status --json
[ "$(jget .lease_days_left)" = "null" ] || fail "a fresh copy should carry no lease warning: $(last_out)"
expect_exit 0 faketime -f "+36h" "$AGENT" --dir "$TABLET" status --json
[ "$(jget .lease_days_left)" = "2" ] || fail "1.5 days into a 3-day lease the copy locks in 2 days: $(last_out)"
jget .lease_warning | grep -qx "this copy locks in 2 days without a sync" || fail "status warning: $(last_out)"
expect_exit 0 faketime -f "+36h" "$AGENT" --dir "$TABLET" status
last_out | grep -q "WARNING: *this copy locks in 2 days without a sync" || fail "status text warning: $(last_out)"
expect_exit 0 faketime -f "+60h" "$AGENT" --dir "$TABLET" lookup $NHS_A --json
[ "$(jget .banner.lease_days_left)" = "1" ] || fail "the card should carry the warning (1 day left): $(last_out)"
expect_exit 0 faketime -f "+60h" "$AGENT" --dir "$TABLET" lookup $NHS_A
last_out | grep -q "this copy locks in 1 day without a sync" || fail "the terminal card should warn: $(last_out)"
CMC_LEASE_WARN_DAYS=0 expect_exit 0 faketime -f "+60h" "$AGENT" --dir "$TABLET" lookup $NHS_A --json
[ "$(jget .banner.lease_days_left)" = "null" ] || fail "CMC_LEASE_WARN_DAYS=0 turns the warning off: $(last_out)"
JAR="$E2E_TMP/jar"
page() { curl -s -b "$JAR" -c "$JAR" -o "$E2E_TMP/page.html" -w '%{http_code}' "$@"; }
pre() { sed -n 's/.*name="pre" value="\([0-9a-f]*\)".*/\1/p' "$E2E_TMP/page.html" | head -n 1; }
serve_at() { # serve_at FAKETIME-OFFSET: the page server on a free port, its clock moved on
  PORT=$(( 20000 + RANDOM % 12000 ))
  rm -f "$JAR"
  faketime -f "$1" "$AGENT" --dir "$TABLET" serve --listen "127.0.0.1:$PORT" >>"$E2E_TMP/serve.log" 2>&1 &
  SERVE_PID=$!
  for i in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/style.css" && return 0
    kill -0 $SERVE_PID 2>/dev/null || fail "the page server did not start: $(cat "$E2E_TMP/serve.log")"
    sleep 0.1
  done
  fail "the page server did not answer"
}
# stop_serve: the page server, and faketime's child that is the server itself
stop_serve() { pkill -P $SERVE_PID 2>/dev/null || true; kill $SERVE_PID 2>/dev/null || true; wait $SERVE_PID 2>/dev/null || true; }
serve_at "+60h"
[ "$(page "http://127.0.0.1:$PORT/")" = 200 ] || fail "the unlock page"
code=$(page -L --data-urlencode "pre=$(pre)" --data-urlencode "user=tablet-user" --data-urlencode "pin=$CMC_PIN" \
  "http://127.0.0.1:$PORT/unlock")
[ "$code" = 200 ] || fail "unlock before the lock should work, got $code"
grep -q "This copy locks in 1 day without a sync" "$E2E_TMP/page.html" || fail "the page should warn before the lock"
stop_serve
pass "status and the card warn 'this copy locks in N days' within the threshold (terminal, --json, page)"

# ---- locked: break glass -----------------------------------------------------------------------
locked() { faketime -f "+4d" "$AGENT" --dir "$TABLET" "$@"; }
expect_exit 4 locked lookup $NHS_A
last_err | grep -q "break-glass\|has not synced" || fail "the lock should say why: $(last_err)"
expect_exit 2 locked lookup $NHS_A --break-glass ""
expect_exit 2 locked lookup $NHS_A --break-glass "why"
last_err | grep -q "at least 8 characters" || fail "a short reason should be refused by name: $(last_err)"
expect_exit 2 locked lookup $NHS_A --break-glass "$(printf 'arrest\033[2J here')"
expect_exit 2 locked show $NHS_A --break-glass "$REASON"
echo "0000-wrong" >"$E2E_TMP/wrong"; chmod 600 "$E2E_TMP/wrong"
expect_exit 4 locked lookup $NHS_A --break-glass "$REASON" --pin-file "$E2E_TMP/wrong"
expect_exit 0 locked lookup $NHS_A --break-glass "$REASON" --json
[ "$(jget .banner.break_glass)" = "true" ] || fail "the card should say it was opened by break glass: $(last_out)"
[ "$(jget .banner.copy_age_days)" -ge 4 ] || fail "the card should carry the copy's age in days: $(last_out)"
last_out | grep -q "dnacpr\|DNACPR" || fail "the CPR decision should be on a break-glass card: $(last_out)"
expect_exit 0 locked lookup $NHS_A --break-glass "$REASON"
last_out | grep -q "DNACPR" || fail "the terminal card should show the CPR decision: $(last_out)"
last_out | grep -q "copy is 4 days old - may be out of date" || fail "the break-glass banner: $(last_out)"
expect_exit 0 locked audit --json
[ "$(jget '[.entries[] | select(.action == "break_glass")] | length')" -eq 2 ] ||
  fail "each break-glass view should be audited as break_glass: $(last_out)"
[ "$(jget '[.entries[] | select(.action == "break_glass")][0].identifier')" = "$REASON" ] ||
  fail "the audit entry should keep the reason: $(last_out)"
pass "a locked copy opens one card with a PIN and a typed reason; audited as break_glass"

# ---- the page: break glass on a locked copy ----------------------------------------------------
serve_at "+4d"
[ "$(page "http://127.0.0.1:$PORT/")" = 200 ] || fail "the unlock page"
code=$(page --data-urlencode "pre=$(pre)" --data-urlencode "user=tablet-user" --data-urlencode "pin=$CMC_PIN" \
  "http://127.0.0.1:$PORT/unlock")
[ "$code" = 423 ] || fail "unlocking a locked copy should answer 423, got $code"
grep -q 'action="/break-glass"' "$E2E_TMP/page.html" || fail "the locked page should offer break glass"
code=$(page --data-urlencode "pre=$(pre)" --data-urlencode "user=tablet-user" --data-urlencode "pin=$CMC_PIN" \
  --data-urlencode "nhs=$NHS_A" --data-urlencode "reason=no" "http://127.0.0.1:$PORT/break-glass")
[ "$code" = 422 ] || fail "a short reason should be refused on the page, got $code"
code=$(page --data-urlencode "pre=$(pre)" --data-urlencode "user=tablet-user" --data-urlencode "pin=0000-wrong" \
  --data-urlencode "nhs=$NHS_A" --data-urlencode "reason=$REASON" "http://127.0.0.1:$PORT/break-glass")
[ "$code" = 401 ] || fail "a wrong PIN should open nothing, got $code"
grep -q "DNACPR" "$E2E_TMP/page.html" && fail "a wrong PIN showed the card"
code=$(page --data-urlencode "pre=$(pre)" --data-urlencode "user=tablet-user" --data-urlencode "pin=$CMC_PIN" \
  --data-urlencode "nhs=$NHS_A" --data-urlencode "reason=$REASON (page)" "http://127.0.0.1:$PORT/break-glass")
[ "$code" = 200 ] || fail "break glass on the page should show the card, got $code"
grep -q "DNACPR" "$E2E_TMP/page.html" || fail "the break-glass card should show the CPR decision"
grep -q "copy is 4 days old" "$E2E_TMP/page.html" || fail "the page's break-glass card should say how old the copy is"
[ "$(page "http://127.0.0.1:$PORT/")" = 200 ] && grep -q 'action="/unlock"' "$E2E_TMP/page.html" ||
  fail "break glass must not leave a session open"
stop_serve
grep -q "Okafor\|Margaret\|$NHS_A\|$REASON" "$E2E_TMP/serve.log" && fail "patient data or the reason in the page server's log"
expect_exit 0 locked audit --json
[ "$(jget '[.entries[] | select(.action == "break_glass")] | length')" -eq 3 ] ||
  fail "the page's break-glass view should be audited too: $(last_out)"
pass "the page offers break glass on a locked copy: PIN and reason checked, one card, no session"

# ---- reported to the hub -----------------------------------------------------------------------
expect_exit 0 agent "$TABLET" sync
expect_exit 0 hub audit "$A" --json
[ "$(jget '[.[] | select(.action == "break_glass" and .device == "tablet")] | length')" -eq 3 ] ||
  fail "cmc-hub audit should list the break-glass views: $(last_out)"
expect_exit 0 hub audit --break-glass --json
[ "$(jget '.[0].identifier')" = "$REASON" ] || fail "cmc-hub audit --break-glass should give the reason: $(last_out)"
expect_exit 0 hub audit --break-glass
last_out | grep -q "break_glass.*reason: \"$REASON\"" || fail "the text listing should give the reason: $(last_out)"
grep -q "Okafor\|Margaret\|$NHS_A" "$E2E_TMP/hub.log" && fail "patient data in the hub's log"
pass "the next sync reports break-glass views; cmc-hub audit lists them with the reason"
