#!/usr/bin/env bash
# runs long: scripts/run-tests.sh starts it first
# The crew's page in a real browser: Debian's Chromium driven by playwright-core (tests/web),
# against real `cmc-agent serve` processes on 127.0.0.1 whose replicas were filled by a real
# sync with a real hub over HTTPS.
#   - an ambulance tablet (urgent care) and a nurse's laptop (clinician, with a pending edit
#     and a draft of the team's caseload), each serving its page;
#   - the tablet's page again under faketime two days later (the stale-copy banner), and once
#     more with a 3-second idle lock;
#   - the card's first screen in every state the card model can produce (tests/web/
#     first_screen.test.mjs, on pages written by build/tests/test_agent_card): the CPR box at
#     390x844 and 1280x800, and the accessibility checker (axe) day and night;
#   - the browser tests (tests/web/crew_page.test.mjs): unlock, wrong PIN, search both ways,
#     the card's content and order, drafts invisible to urgent care, a pending edit shown as a
#     proposal, the stale banner, the idle lock, security headers, the CPR box on the first
#     screen and axe on the real pages, nothing patient-identifying in URLs; screenshots saved;
#   - then here: every view is in the device's audit log, and no log line names a patient.
. "$(dirname "$0")/lib.sh"

[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"

# The browser and playwright-core: installed when missing; a failure here fails the test.
"$ROOT/tests/web/setup.sh" || fail "the browser test tools (chromium, node, playwright-core) are not installed"
# libfaketime, preloaded straight into the agent (not through the `faketime` wrapper, which
# would stand between the test and the server's pid)
FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is not installed (apt: faketime; scripts/install-deps.sh)"

REGION=south-east-london
TEAM=peckham-district-nursing
NHS_A=9434765919   # Margaret Okafor: published, DNACPR, on the team's caseload
NHS_B=4010232137   # Eleanor Whitfield: a draft of the team's caseload
NHS_D=4857773007   # Arthur Pennington: published, FOR CPR, review overdue, region only
NHS_E=4010232153   # Doris Achterberg: published, CPR not yet discussed, region only

# plan_file NHS ID JQ-EDIT: the example plan with its own identity.
plan_file() {
  local f="$E2E_TMP/plan-$1.json"
  jq --arg nhs "$1" --arg id "$2" ".nhs_number = \$nhs | .plan_id = \$id | $3" "$EXAMPLE" >"$f"
  echo "$f"
}

hub_init_users
A=$(hub plan import "$(plan_file $NHS_A 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 '.')" --as nurse1 | tail -n 1)
B=$(hub plan import "$(plan_file $NHS_B 11111111-2222-4333-8444-555555555555 \
  '.patient.given_name = "Eleanor" | .patient.family_name = "Whitfield" | .patient.date_of_birth = "1941-09-02" | .patient.postcode = "SE15 5RS"')" \
  --as nurse1 | tail -n 1)
D=$(hub plan import "$(plan_file $NHS_D 33333333-4444-4555-8666-777777777777 \
  '.patient.given_name = "Arthur" | .patient.family_name = "Pennington" | .patient.preferred_name = null | .patient.gender = "male" | .patient.date_of_birth = "1932-11-30" | .patient.postcode = "SE22 8HU" | .patient.address = "4 Grove Vale, London" | .resuscitation.decision = "for_cpr" | .consent.recorded_at = "2024-01-10T10:00:00Z" | .resuscitation.decided_at = "2024-01-10"')" \
  --as nurse1 | tail -n 1)
E=$(hub plan import "$(plan_file $NHS_E 44444444-5555-4666-8777-888888888888 \
  '.patient.given_name = "Doris" | .patient.family_name = "Achterberg" | .patient.preferred_name = null | .patient.date_of_birth = "1929-06-05" | .patient.postcode = "SE5 9RW" | .resuscitation.decision = "not_yet_discussed" | .resuscitation.decided_by = null | .resuscitation.decided_at = null')" \
  --as nurse1 | tail -n 1)
for p in "$A" "$D" "$E"; do
  hub plan submit "$p" --as nurse1 >/dev/null
done
# approval sets the review date 12 months on: A and D are approved on the days that give the
# dates the page must show (2027-02-11; overdue since 2025-01-15)
LD_PRELOAD="$FAKETIME_LIB" FAKETIME="@2026-02-11 15:02:00" "$HUB" --dir "$HUB_DIR" plan approve "$A" --as gp1 >/dev/null
LD_PRELOAD="$FAKETIME_LIB" FAKETIME="@2024-01-16 12:00:00" "$HUB" --dir "$HUB_DIR" plan approve "$D" --as gp1 >/dev/null
hub plan approve "$E" --as gp1 >/dev/null
hub caseload add $TEAM $NHS_A >/dev/null
hub caseload add $TEAM $NHS_B >/dev/null

start_hub
enroll_tablet_and_laptop
expect_exit 0 agent "$TABLET" sync --json
[ "$(jget .puts)" -eq 3 ] || fail "the tablet should hold the three published plans, got $(jget .puts)"
expect_exit 0 agent "$LAPTOP" sync
# a clinician's offline edit, not yet pushed: the laptop's card must mark it
echo '{"set": {"prognosis": "days to weeks"}}' >"$E2E_TMP/edit.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/edit.json"
stop_hub   # the page works with no network at all
pass "hub, tablet and laptop ready; the hub is stopped"

# start_page NAME DIR [ENV=VALUE...]: runs `cmc-agent serve` on a free port; sets
# PAGE_URL and PAGE_PID. The server's stderr (debug level) goes to $E2E_TMP/NAME.log.
PAGE_PIDS=()
start_page() {
  local name=$1 dir=$2; shift 2
  local tries=0 port pid i
  while :; do
    port=$(( 20000 + RANDOM % 12000 ))
    env CMC_LOG=debug "$@" "$AGENT" --dir "$dir" serve --listen "127.0.0.1:$port" \
      >"$E2E_TMP/$name.out" 2>>"$E2E_TMP/$name.log" &
    pid=$!
    for i in $(seq 1 100); do
      if curl -s -o /dev/null "http://127.0.0.1:$port/style.css" 2>/dev/null; then
        PAGE_URL="http://127.0.0.1:$port"
        PAGE_PIDS+=("$pid")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    tries=$((tries + 1))
    [ $tries -lt 5 ] || { cat "$E2E_TMP/$name.log" >&2; fail "the page $name did not start"; }
  done
}
# stop_pages: SIGTERM to each page; each must lock, close and exit 0 (under a sanitizer,
# with nothing reported).
stop_pages() {
  local p rc
  for p in "${PAGE_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    rc=0; wait "$p" 2>/dev/null || rc=$?
    [ $rc -eq 0 ] || fail "a page server exited with status $rc on SIGTERM"
  done
  PAGE_PIDS=()
  if grep -l "Sanitizer\|runtime error" "$E2E_TMP"/*.log >/dev/null 2>&1; then
    grep -h -A20 "Sanitizer\|runtime error" "$E2E_TMP"/*.log | head -n 40 >&2
    fail "a sanitizer reported an error in a page server"
  fi
}

# the listener refuses anything but loopback, before touching the replica
expect_exit 2 agent "$TABLET" serve --listen 0.0.0.0:8080
last_err | grep -q "not a loopback address" || fail "serve should say why 0.0.0.0 is refused"
expect_exit 2 agent "$TABLET" serve --listen 192.168.1.10:8080

start_page tablet "$TABLET"
TABLET_URL=$PAGE_URL
start_page laptop "$LAPTOP"
LAPTOP_URL=$PAGE_URL
# two days on, with no sync since: the copy is stale. Only the wall clock moves (the boot
# clock the offline lease also reads would otherwise jump by decades under libfaketime).
# Under `make check SANITIZE=...` the preload would come before the sanitizer's runtime.
start_page stale "$TABLET" LD_PRELOAD="$FAKETIME_LIB" FAKETIME="+2d" FAKETIME_DONT_FAKE_MONOTONIC=1 \
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
STALE_URL=$PAGE_URL
start_page idle "$TABLET" CMC_WEB_IDLE_SECONDS=3
IDLE_URL=$PAGE_URL
curl -s -D "$E2E_TMP/headers" -o /dev/null "$TABLET_URL/"
grep -qi '^cache-control: no-store' "$E2E_TMP/headers" || fail "the unlock page should be sent with no-store"
pass "four pages serving (tablet, laptop, tablet two days on, tablet with a short idle lock)"

SHOTS="$BUILD/web-screenshots"
mkdir -p "$SHOTS"
# the card's first screen in every state the card model can produce (pending, sent, conflict,
# lease warning, break-glass, long names...), rendered by the model's own test into files
CARD_PAGES="$E2E_TMP/card-pages"
mkdir -p "$CARD_PAGES"
[ -x "$BUILD/tests/test_agent_card" ] || fail "build/tests/test_agent_card is missing: make $BUILD/tests/test_agent_card"
CMC_CARD_PAGES_DIR="$CARD_PAGES" "$BUILD/tests/test_agent_card" >"$E2E_TMP/card-pages.out" 2>&1 ||
  { cat "$E2E_TMP/card-pages.out"; fail "the card model's test failed while writing the pages"; }
node_tests first_screen.test.mjs CARD_PAGES="$CARD_PAGES" SHOTS="$SHOTS" DOCS="${UPDATE_DOCS_SCREENSHOTS:+$ROOT/docs}"
pass "CPR on the first screen at 390x844 and 1280x800 in every state; axe: nothing critical or serious"
node_tests crew_page.test.mjs TABLET_URL="$TABLET_URL" LAPTOP_URL="$LAPTOP_URL" STALE_URL="$STALE_URL" \
  IDLE_URL="$IDLE_URL" TABLET_USER=tablet-user LAPTOP_USER=laptop-user PIN="$CMC_PIN" \
  NHS_A="$NHS_A" NHS_B="$NHS_B" NHS_D="$NHS_D" NHS_E="$NHS_E" \
  SHOTS="$SHOTS" DOCS="${UPDATE_DOCS_SCREENSHOTS:+$ROOT/docs}"
pass "browser tests passed; screenshots in $SHOTS"

stop_pages
# every view went through the audit log of the device that showed it
expect_exit 0 agent "$TABLET" audit --json
[ "$(jget '[.entries[] | select(.action == "page_view" and .plan_id == "'"$A"'")] | length')" -ge 1 ] ||
  fail "the tablet's audit log should hold page views of the plan shown"
[ "$(jget '[.entries[] | select(.action == "lookup_miss" and .identifier == "'$NHS_B'")] | length')" -ge 1 ] ||
  fail "the tablet's audit log should hold the miss for the draft's NHS number"
[ "$(jget '[.entries[] | select(.action == "search")] | length')" -ge 1 ] ||
  fail "the tablet's audit log should hold the searches"
expect_exit 0 agent "$TABLET" audit --verify
expect_exit 0 agent "$LAPTOP" audit --json
[ "$(jget '[.entries[] | select(.action == "page_view" and .plan_id == "'"$B"'")] | length')" -ge 1 ] ||
  fail "the laptop's audit log should hold the view of the draft"
pass "every page view, miss and search is in the device's audit log"

# the servers' logs (debug level) name no patient
for log in tablet laptop stale idle; do
  for needle in $NHS_A $NHS_B $NHS_D Okafor Whitfield Pennington Achterberg "SE15" "$CMC_PIN"; do
    if grep -qF -- "$needle" "$E2E_TMP/$log.log"; then
      fail "the $log page's log holds patient data or a PIN ($needle)"
    fi
  done
done
pass "the page's logs hold no patient data and no PIN"
