#!/usr/bin/env bash
# End to end, what an NHS IT team meets first: --version and per-command help on both
# programs, "did you mean" for a mistyped command, devices found by name (and names unique
# among devices in service), the scopes the hub knows and the refusal of a scope naming
# nothing, the settings file, and a stolen device found by name and wiped.
. "$(dirname "$0")/lib.sh"

# ---- version and help ----------------------------------------------------------------------
for prog in "$HUB" "$AGENT"; do
  expect_exit 0 "$prog" --version
  last_out | head -n 1 | grep -Eq "^cmc-(hub|agent) [0-9a-z.-]+" || fail "no version line: $(last_out)"
  last_out | grep -q "^SQLCipher " || fail "no SQLCipher version"
  last_out | grep -q "^libsodium " || fail "no libsodium version"
  last_out | grep -q "^libcurl " || fail "no libcurl version"
  last_out | grep -q "unknown" && fail "version not stamped at build time: $(last_out)"
done
expect_exit 0 "$AGENT" sync --help
last_out | grep -q "usage: cmc-agent sync" || fail "sync --help is not the sync help"
last_out | grep -q "CMC_SYNC_INTERVAL" || fail "sync --help does not name its environment"
expect_exit 0 "$HUB" plan --help
last_out | grep -q "plan withdraw-consent" || fail "plan --help is not the plan help"
last_out | grep -q "serve" && fail "plan --help prints the global help"
expect_exit 0 "$HUB" serve --help
last_out | grep -q "request_deadline" || fail "serve --help does not list its settings"
pass "--version and per-command help on both programs"

hub_init
expect_exit 2 hub plan lst
last_err | grep -q "unknown command 'lst' — did you mean 'list'?" || fail "plan lst: $(last_err)"
expect_exit 2 hub device lst
last_err | grep -q "did you mean 'list'?" || fail "device lst: $(last_err)"
expect_exit 2 hub devcie list
last_err | grep -q "did you mean 'device'?" || fail "devcie: $(last_err)"
expect_exit 2 "$AGENT" lst
last_err | grep -q "unknown command 'lst' — did you mean 'list'?" || fail "agent lst: $(last_err)"
expect_exit 2 "$AGENT" snyc
last_err | grep -q "did you mean 'sync'?" || fail "agent snyc: $(last_err)"
pass "unknown commands: did you mean, exit 2"

# ---- scopes ------------------------------------------------------------------------------------
hub seed --plans 60 --seed 5 >/dev/null
expect_exit 0 hub --json scope list
REGION=$(jget '[.[] | select(.scope | startswith("region:"))][0].scope')
HOME_SCOPE=$(jget '[.[] | select(.scope | startswith("care_home:"))][0].scope')
[ -n "$REGION" ] && [ "$REGION" != null ] || fail "scope list names no region"
[ -n "$HOME_SCOPE" ] && [ "$HOME_SCOPE" != null ] || fail "scope list names no care home"
[ "$(jget "[.[] | select(.scope == \"$REGION\")][0].plans")" -ge 1 ] || fail "region without plan count"
expect_exit 0 hub scope list
last_out | grep -q "^$REGION " || fail "text scope list lacks $REGION"
TYPO="${HOME_SCOPE%?}x"      # one letter wrong
expect_exit 2 hub device add typo-tablet --scope "$TYPO" --role urgent_care
last_err | grep -q "did you mean '$HOME_SCOPE'" || fail "no closest scope named: $(last_err)"
expect_exit 0 hub --json device list
[ "$(jget 'length')" = 0 ] || fail "a refused scope still registered a device"
expect_exit 0 hub device add spare --scope care_home:opening-next-month --role urgent_care --allow-empty-scope
pass "scope list with counts; unknown scope refused with the closest name unless allowed"

# ---- devices by name -----------------------------------------------------------------------
expect_exit 0 hub device add amb-12 --scope "$REGION" --role urgent_care
expect_exit 1 hub device add amb-12 --scope "$REGION" --role urgent_care
last_err | grep -q "already in service" || fail "duplicate name not refused: $(last_err)"
expect_exit 0 hub --json device list
AMB_ID=$(jq -r '.[] | select(.name == "amb-12") | .device_id' "$E2E_TMP/last.out")
expect_exit 0 hub device lease amb-12 7
expect_exit 0 hub --json device list
[ "$(jq -r '.[] | select(.name == "amb-12") | .lease_days' "$E2E_TMP/last.out")" = 7 ] || fail "lease by name"
expect_exit 0 hub --json device revoke amb-12
[ "$(jget .device_id)" = "$AMB_ID" ] || fail "revoke by name hit another device"
[ "$(jget .name)" = amb-12 ] || fail "revoke answer lacks the name"
expect_exit 0 hub device add amb-12 --scope "$REGION" --role urgent_care   # name free again
expect_exit 3 hub device wipe no-such-tablet
pass "devices by name: add, lease, revoke; names unique among devices in service"

# ---- the settings file ---------------------------------------------------------------------
printf 'dir = %s\n# a comment\nlog = warn\n' "$HUB_DIR" >"$E2E_TMP/hub.conf"
expect_exit 0 "$HUB" --config "$E2E_TMP/hub.conf" --json device list
[ "$(jget 'length')" -ge 2 ] || fail "--config dir not used"
CMC_HUB_CONFIG="$E2E_TMP/hub.conf" expect_exit 0 "$HUB" --json device list
[ "$(jget 'length')" -ge 2 ] || fail "CMC_HUB_CONFIG dir not used"
printf 'dri = /tmp\n' >"$E2E_TMP/bad.conf"
expect_exit 2 "$HUB" --config "$E2E_TMP/bad.conf" device list
last_err | grep -q "line 1: unknown setting 'dri'" || fail "typo in settings not named: $(last_err)"
pass "settings file: --config and CMC_HUB_CONFIG; an unknown key is an error"

# ---- a tablet stolen at 3 a.m.: find it by name, wipe, confirm --------------------------------
start_hub
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" night-crew-3 "$REGION" urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync
expect_exit 0 hub device list
last_out | grep "night-crew-3" | grep -q active || fail "stolen tablet not listed active by name"
expect_exit 0 hub device wipe night-crew-3
last_out | grep -q "night-crew-3 (.*): wipe ordered" || fail "wipe answer: $(last_out)"
set +e; agent "$TABLET" sync >/dev/null 2>&1; set -e    # the thief's tablet comes online
expect_exit 0 hub --json device list
[ "$(jq -r '.[] | select(.name == "night-crew-3") | .state' "$E2E_TMP/last.out")" = wiped ] \
  || fail "wipe not confirmed: $(last_out)"
expect_exit 4 agent "$TABLET" list
pass "stolen device: found by name, wiped, confirmed"
