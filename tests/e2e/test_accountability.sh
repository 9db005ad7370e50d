#!/usr/bin/env bash
# End to end, real hub and agent over HTTPS on 127.0.0.1: accountability and lost devices.
#   - every lookup (hit and miss) is audited under the acting user's own name, uploaded at the
#     next sync and answered by `cmc-hub audit`; the device prunes what the hub acknowledged;
#   - purges are acknowledged once durable; `plan show` lists devices still holding a
#     withdrawn plan until they do;
#   - a replica restored from an older copy is caught at the next sync and repaired;
#   - the offline lease locks a replica and a sync unlocks it; winding the clock back does
#     not help;
#   - a removed user's PIN opens nothing;
#   - a tampered audit entry fails `audit --verify` and is refused by the hub;
#   - a signed wipe order leaves no readable replica, and the hub shows the device wiped.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
NHS_A=9434765919
NHS_B=4010232137
NHS_MISS=4857773007

hub_init_users
A=$(publish_plan $NHS_A 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11 MARKER-ALPHA)
B=$(publish_plan $NHS_B 11111111-2222-4333-8444-555555555555 MARKER-BRAVO)
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
DEV=$(hub device list --json | jq -r '.[] | select(.name == "tablet") | .device_id')
echo "5555-crew-two" >"$E2E_TMP/pin2"; chmod 600 "$E2E_TMP/pin2"
expect_exit 0 agent "$TABLET" user add crew2 --role urgent_care --new-pin-file "$E2E_TMP/pin2" --user tablet-user
expect_exit 0 agent "$TABLET" sync --user tablet-user

# ---- audit: hits and misses, each under the acting user's name ---------------------------------
expect_exit 0 agent "$TABLET" lookup $NHS_A --user tablet-user
expect_exit 0 agent "$TABLET" lookup $NHS_A --user crew2 --pin-file "$E2E_TMP/pin2"
expect_exit 3 agent "$TABLET" lookup $NHS_MISS --user crew2 --pin-file "$E2E_TMP/pin2"
expect_exit 0 agent "$TABLET" audit --verify --user tablet-user
expect_exit 0 agent "$TABLET" sync --user tablet-user
expect_exit 0 hub audit "$A" --json
[ "$(jget '[.[] | select(.action == "lookup" and .device == "tablet")] | length')" -eq 2 ] ||
  fail "the hub should list both lookups of plan A: $(last_out)"
jget '.[].user' | grep -qx tablet-user || fail "the first user's lookup is missing from the hub's audit"
jget '.[].user' | grep -qx crew2 || fail "the second user's lookup is missing from the hub's audit"
expect_exit 0 hub audit $NHS_MISS --json
[ "$(jget '.[0].action')" = "lookup_miss" ] || fail "a lookup that found nothing should be audited too"
expect_exit 0 agent "$TABLET" audit --json --user tablet-user
[ "$(jget '.entries | length')" -eq 0 ] || fail "entries the hub acknowledged should be pruned on the device"
pass "lookups (hits and misses) reach cmc-hub audit under each user's name; acknowledged entries pruned"

# ---- purge acknowledgement, and a restored old replica ------------------------------------------
cp -a "$TABLET" "$E2E_TMP/tablet-backup"
expect_exit 0 hub plan withdraw-consent "$A" --as nurse1 --reason "patient request"
expect_exit 0 hub plan show "$A" --json
[ "$(jget '.devices_not_purged | length')" -eq 1 ] || fail "the tablet should be listed as still holding plan A"
expect_exit 0 agent "$TABLET" sync --json --user tablet-user
[ "$(jget .purges)" -eq 1 ] || fail "the tablet should purge plan A"
expect_exit 0 hub plan show "$A" --json
[ "$(jget '.devices_not_purged | length')" -eq 0 ] || fail "after the acknowledgement no device should hold plan A"
pass "purge acknowledged once durable; plan show lists holders until then"

rm -rf "$TABLET"
cp -a "$E2E_TMP/tablet-backup" "$TABLET"
in_replica "$TABLET" MARKER-ALPHA
expect_exit 0 agent "$TABLET" sync --json --user tablet-user
[ "$(jget .rollback)" = "true" ] || fail "the hub should catch a replica restored from an older copy"
not_in_replica "$TABLET" MARKER-ALPHA
expect_exit 0 hub device list --json
[ "$(jq -r --arg d "$DEV" '.[] | select(.device_id == $d) | .rollbacks' "$E2E_TMP/last.out")" -ge 1 ] ||
  fail "the hub should record the rollback"
pass "a restored old replica is caught and the purge re-applied"

# ---- the offline lease --------------------------------------------------------------------------
expect_exit 0 hub device lease "$DEV" 1
expect_exit 0 agent "$TABLET" sync --user tablet-user
expect_exit 0 agent "$TABLET" status --json --user tablet-user
[ "$(jget .lease_days)" -eq 1 ] || fail "the lease policy should reach the device in a signed bundle"
expect_exit 0 agent "$TABLET" lookup $NHS_B --user tablet-user
expect_exit 4 faketime -f "+2d" "$AGENT" --dir "$TABLET" lookup $NHS_B --user tablet-user
last_err | grep -q "has not synced with the hub since" || fail "the lock should name the last sync: $(last_err)"
[ "$(wc -l <"$E2E_TMP/last.err")" -eq 1 ] || fail "one line expected"
expect_exit 4 faketime -f "-10d" "$AGENT" --dir "$TABLET" lookup $NHS_B --user tablet-user
pass "the lease locks after its days; winding the clock back does not unlock"
expect_exit 0 agent "$TABLET" sync --user tablet-user
expect_exit 0 agent "$TABLET" lookup $NHS_B --user tablet-user
pass "a sync unlocks the replica"
expect_exit 0 hub device lease "$DEV" default

# ---- a removed user's PIN opens nothing --------------------------------------------------------
expect_exit 0 agent "$TABLET" user remove crew2 --user tablet-user
expect_exit 4 agent "$TABLET" lookup $NHS_B --user crew2 --pin-file "$E2E_TMP/pin2"
pass "a removed user's PIN opens nothing"

# ---- a tampered audit entry --------------------------------------------------------------------
expect_exit 0 agent "$TABLET" lookup $NHS_B --user tablet-user
CMC_USER=tablet-user "$BUILD/tests/tools/replica_sql" "$TABLET" \
  "UPDATE audit SET user = 'someone-else' WHERE seq = (SELECT max(seq) FROM audit)" ||
  fail "could not alter the audit entry"
expect_exit 1 agent "$TABLET" audit --verify --user tablet-user
last_err | grep -q "broken at entry" || fail "audit --verify should say where the chain breaks: $(last_err)"
expect_exit 1 agent "$TABLET" sync --user tablet-user
last_err | grep -qi "refused this device's audit log" || fail "the hub should refuse the tampered log: $(last_err)"
pass "a tampered audit entry fails audit --verify and is refused by the hub"

# ---- remote wipe -------------------------------------------------------------------------------
expect_exit 0 hub device wipe "$DEV"
expect_exit 4 agent "$TABLET" sync --user tablet-user
last_err | grep -qi "wiped" || fail "the sync should say the device was wiped: $(last_err)"
expect_exit 4 agent "$TABLET" lookup $NHS_B --user tablet-user
last_err | grep -qi "wiped" || fail "after a wipe every command should say so"
[ ! -e "$TABLET/keyslots" ] && [ ! -e "$TABLET/replica.db" ] && [ ! -e "$TABLET/replica.db-wal" ] ||
  fail "the wipe should leave no key slots and no replica: $(ls "$TABLET")"
expect_exit 0 hub device list --json
[ "$(jq -r --arg d "$DEV" '.[] | select(.device_id == $d) | .state' "$E2E_TMP/last.out")" = "wiped" ] ||
  fail "the hub should show the device as wiped"
pass "a wipe order destroys the keys and the replica, and the hub shows the device wiped"
