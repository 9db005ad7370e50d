#!/usr/bin/env bash
# A curious user with a lower role on a shared clinician laptop, with real processes: the
# urgent-care user's PIN unwraps their own key slot, and with it they open the replica and
# try to act as the clinicians.
#   - an edit made by the clinician nurse-jones is pushed and the hub's history says
#     "push by nurse-jones on laptop";
#   - a push made by hand with the device's own signing key (read from the replica) is
#     refused: naming nobody, signed by the urgent-care user, or claiming to be nurse-jones
#     with the wrong key; nothing is stored;
#   - the hub's history shows no version the urgent-care user made.
. "$(dirname "$0")/lib.sh"

[ -f "$EXAMPLE" ] || fail "no example plan at $EXAMPLE"
FORGE="$BUILD/tests/tools/forge_push"
[ -x "$FORGE" ] || fail "no $FORGE (make build/tests/tools/forge_push)"
TEAM=peckham-district-nursing
NHS_A=9434765919
ID_A=7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11
UC_PIN=crew-smith-2468

jq --arg nhs $NHS_A --arg id $ID_A '.nhs_number = $nhs | .plan_id = $id' "$EXAMPLE" >"$E2E_TMP/plan-a.json"
hub_init_users
A=$(publish_file "$E2E_TMP/plan-a.json")
hub caseload add $TEAM $NHS_A >/dev/null
start_hub

# The shared laptop: a clinician device with nurse-jones (clinician) and crew-smith (urgent care).
LAPTOP="$E2E_TMP/laptop"
code=$(hub device add laptop --scope "team:$TEAM" --role clinician | tail -n 1)
expect_exit 0 agent "$LAPTOP" init --user nurse-jones --role clinician
expect_exit 0 agent "$LAPTOP" enroll --hub "$HUB_URL" --code "$code" --ca "$CA" --name laptop
printf '%s\n' "$UC_PIN" >"$E2E_TMP/uc-pin"; chmod 600 "$E2E_TMP/uc-pin"
expect_exit 0 agent "$LAPTOP" user add crew-smith --role urgent_care --new-pin-file "$E2E_TMP/uc-pin" --user nurse-jones
expect_exit 0 agent "$LAPTOP" sync --user nurse-jones

# ---- a person on every edit ------------------------------------------------------------------
echo '{"set": {"prognosis": "days to weeks"}}' >"$E2E_TMP/edit.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/edit.json" --user nurse-jones
expect_exit 0 agent "$LAPTOP" sync --json --user nurse-jones
[ "$(jget .pushed)" -eq 1 ] || fail "nurse-jones's edit was not pushed"
expect_exit 0 hub plan history "$A"
last_out | grep -q "push by nurse-jones on laptop" || fail "the history does not name the person: $(last_out)"
pass "nurse-jones's edit reached the hub as 'push by nurse-jones on laptop'"

# ---- hand-made pushes by the urgent-care user ------------------------------------------------
base=$(hub plan show "$A" --json | jq -r .version)
versions_before=$(hub plan history "$A" | grep -c . || true)
forge() {
  set +e
  CMC_USER=crew-smith CMC_PIN=$UC_PIN "$FORGE" "$LAPTOP" $ID_A "$base" \
    '{"set": {"resuscitation.form_location": "Nowhere"}}' "$1" >"$E2E_TMP/forge.out" 2>&1
  local rc=$?
  set -e
  [ $rc -eq 1 ] || fail "a hand-made push ($1) was not refused by the hub (exit $rc): $(cat "$E2E_TMP/forge.out")"
  grep -q "^403 " "$E2E_TMP/forge.out" || fail "a hand-made push ($1): not a 403: $(cat "$E2E_TMP/forge.out")"
}
forge none
grep -q "names no user" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge self
grep -q "only a clinician" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge as:nurse-jones
grep -q "does not verify" "$E2E_TMP/forge.out" || fail "the refusal does not say why: $(cat "$E2E_TMP/forge.out")"
forge as:dr-nobody
[ "$(hub plan history "$A" | grep -c . || true)" = "$versions_before" ] || fail "a refused push left a version"
hub plan history "$A" | grep -q crew-smith && fail "the history names crew-smith"
pass "pushes signed with the device key alone, by the urgent-care user, or forged as nurse-jones are refused (403), nothing stored"

# ---- keys per role: what the urgent-care key opens -------------------------------------------
KEYS="$BUILD/tests/tools/slot_keys"
echo '{"set": {"social_support": "PENDINGSECRET neighbour has a key"}}' >"$E2E_TMP/edit2.json"
expect_exit 0 agent "$LAPTOP" edit $NHS_A --file "$E2E_TMP/edit2.json" --user nurse-jones
uc_keys=$(CMC_USER=crew-smith CMC_PIN=$UC_PIN "$KEYS" "$LAPTOP") || fail "slot_keys crew-smith"
uc_key=$(echo "$uc_keys" | sed -n 's/^replica_key //p')
echo "$uc_keys" | grep -q '^role_key' && fail "the urgent-care slot holds the role key"
nj_role=$(CMC_USER=nurse-jones "$KEYS" "$LAPTOP" | sed -n 's/^role_key //p')
[ -n "$nj_role" ] || fail "nurse-jones's slot holds no role key"
sq() { # sq FILE KEY HMAC SQL: sqlcipher as an attacker would run it
  printf "PRAGMA key = \"x'%s'\";\n%sSELECT 'rows:' || (%s);\n" "$2" "$3" "$4" | sqlcipher "$1" 2>&1 || true
}
out=$(sq "$LAPTOP/replica.db" "$uc_key" "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" \
  "SELECT count(*) FROM sqlite_master")
echo "$out" | grep -q "^rows:[1-9]" || fail "the urgent-care key does not open the replica at all: $out"
out=$(sq "$LAPTOP/replica.db" "$uc_key" "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" \
  "SELECT count(*) FROM sqlite_master WHERE name IN ('pending_edits', 'merges')")
echo "$out" | grep -q "^rows:0" || fail "the replica still holds pending edits or merges: $out"
out=$(sq "$LAPTOP/clinical.db" "$uc_key" "" "SELECT count(*) FROM pending_edits")
echo "$out" | grep -q "^rows:" && fail "the urgent-care key reads the clinical file: $out"
echo "$out" | grep -qi "not a database" || fail "unexpected answer from the clinical file: $out"
out=$(sq "$LAPTOP/clinical.db" "$nj_role" "" "SELECT count(*) FROM pending_edits WHERE state = 0")
echo "$out" | grep -q "^rows:1" || fail "the role key does not read the pending edit: $out"
CMC_USER=crew-smith CMC_PIN=$UC_PIN not_in_replica "$LAPTOP" PENDINGSECRET
no_file_contains "$LAPTOP" PENDINGSECRET
pass "with the urgent-care key: the replica has no pending edits or merges, the clinical file does not open; the role key reads it"

# An urgent-care session still pulls and uploads its views; the clinician's edit waits.
expect_exit 0 agent "$LAPTOP" lookup $NHS_A --user crew-smith --pin-file "$E2E_TMP/uc-pin"
expect_exit 0 agent "$LAPTOP" sync --json --user crew-smith --pin-file "$E2E_TMP/uc-pin"
[ "$(jget .pushed)" -eq 0 ] || fail "an urgent-care session pushed an edit"
expect_exit 0 hub audit $NHS_A
last_out | grep -q crew-smith || fail "the urgent-care user's view did not reach the hub: $(last_out | head -5)"
out=$(sq "$LAPTOP/clinical.db" "$nj_role" "" "SELECT count(*) FROM pending_edits WHERE state = 0")
echo "$out" | grep -q "^rows:1" || fail "the urgent-care sync lost the clinician's pending edit: $out"
expect_exit 0 agent "$LAPTOP" sync --json --user nurse-jones
[ "$(jget .pushed)" -eq 1 ] || fail "the clinician's next sync did not push the waiting edit"
pass "an urgent-care session syncs (pull, audit upload) without touching the clinical file; the edit goes with the clinician's sync"

# ---- keys per role: drafts and versions awaiting approval ----------------------------------
# The hub holds a new draft of plan A and a plan B awaiting approval, both in the laptop's
# caseload. Neither text may be in the replica, whichever user's sync brought them.
NHS_B=9876543210
ID_B=5b2e7d1c-9a40-4e6b-8f31-0c7d9e2a4b55
jq --arg nhs $NHS_B --arg id $ID_B '.nhs_number = $nhs | .plan_id = $id | .social_support = "DRAFTV2SECRET lives alone"' \
  "$EXAMPLE" >"$E2E_TMP/plan-b.json"
echo '{"set": {"social_support": "SECRETDRAFT daughter visits daily"}}' >"$E2E_TMP/edit3.json"
expect_exit 0 hub plan edit "$A" --as nurse1 --file "$E2E_TMP/edit3.json"
B=$(hub plan import "$E2E_TMP/plan-b.json" --as nurse1 | tail -n 1)
hub plan submit "$B" --as nurse1 >/dev/null
hub caseload add $TEAM $NHS_B >/dev/null
expect_exit 0 agent "$LAPTOP" sync --user nurse-jones
drafts_absent() { # the urgent-care key finds no draft row and neither text in the replica
  out=$(sq "$LAPTOP/replica.db" "$uc_key" "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" \
    "SELECT count(*) FROM plan_versions WHERE status <> 'published'")
  echo "$out" | grep -q "^rows:0" || fail "the replica holds versions that are not published: $out"
  for m in "$@"; do
    CMC_USER=crew-smith CMC_PIN=$UC_PIN not_in_replica "$LAPTOP" "$m"
    no_file_contains "$LAPTOP" "$m"
  done
}
drafts_absent SECRETDRAFT DRAFTV2SECRET
out=$(sq "$LAPTOP/clinical.db" "$nj_role" "" "SELECT count(DISTINCT plan_id) FROM drafts")
echo "$out" | grep -q "^rows:2" || fail "the clinical file does not hold both versions: $out"
expect_exit 0 agent "$LAPTOP" show $ID_A --user nurse-jones
last_out | grep -q SECRETDRAFT || fail "the clinician does not see the draft: $(last_out | head -5)"
expect_exit 0 agent "$LAPTOP" show $ID_B --user nurse-jones
last_out | grep -q DRAFTV2SECRET || fail "the clinician does not see the version awaiting approval"
expect_exit 3 agent "$LAPTOP" show $ID_B --user crew-smith --pin-file "$E2E_TMP/uc-pin"
expect_exit 0 agent "$LAPTOP" show $ID_A --user crew-smith --pin-file "$E2E_TMP/uc-pin"
last_out | grep -q SECRETDRAFT && fail "the urgent-care user is shown the draft"
pass "a draft and a version awaiting approval pulled by the clinician: the urgent-care key finds neither in the replica; the clinician sees both"

# An urgent-care user's sync receives a newer draft: it is sealed for the role key (the sync
# asks for every plan whole, once, since the change came against a draft it cannot open, and
# still succeeds) and the next clinician unlock shows it.
echo '{"set": {"social_support": "SECRETDRAFTTWO son moved in"}}' >"$E2E_TMP/edit4.json"
expect_exit 0 hub plan edit "$A" --as nurse1 --file "$E2E_TMP/edit4.json"
expect_exit 0 agent "$LAPTOP" sync --user crew-smith --pin-file "$E2E_TMP/uc-pin"
out=$(sq "$LAPTOP/replica.db" "$uc_key" "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" \
  "SELECT count(*) FROM sealed_drafts")
echo "$out" | grep -q "^rows:[1-9]" || fail "the urgent-care sync kept no sealed draft: $out"
drafts_absent SECRETDRAFTTWO DRAFTV2SECRET
expect_exit 0 agent "$LAPTOP" sync --user crew-smith --pin-file "$E2E_TMP/uc-pin"
expect_exit 0 agent "$LAPTOP" show $ID_A --user nurse-jones
last_out | grep -q SECRETDRAFTTWO || fail "the clinician does not see the draft an urgent-care sync brought"
out=$(sq "$LAPTOP/replica.db" "$uc_key" "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" \
  "SELECT count(*) FROM sealed_drafts")
echo "$out" | grep -q "^rows:0" || fail "the sealed drafts were not opened by the clinician: $out"
drafts_absent SECRETDRAFTTWO
pass "an urgent-care sync seals a new draft away from its own key and succeeds at once; the next clinician unlock shows it"
