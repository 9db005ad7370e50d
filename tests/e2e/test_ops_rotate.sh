#!/usr/bin/env bash
# End to end, changing the hub's TLS key without re-enrolling: two devices enrolled, the
# next key announced (`cmc-hub tls rotate --next-key`), both sync and pin it, the hub
# restarts with the new key and both keep syncing. A third device that missed the window
# re-pins at its next sync because the hub's signing key vouches for the new key, keeping
# its replica. A hub with another signing key but a certificate from the same CA (what a
# mis-issued certificate would allow) is refused with a clear message, and the pin kept.
# On both stores (SQLCipher, then PostgreSQL); the PostgreSQL half is skipped (exit 77 with
# the reason) when no server can start here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/pg_fixture.sh"
trap 'pg_fixture_stop; e2e_cleanup' EXIT

run_case() {
  local store=$1
  HUB_DIR="$E2E_TMP/$store/hub"
  mkdir -p "$E2E_TMP/$store"
  # every case starts from the certificate make_certs issued (a case replaces it)
  if [ -f "$E2E_TMP/certs/server.orig.pem" ]; then
    cp "$E2E_TMP/certs/server.orig.pem" "$E2E_TMP/certs/server.pem"
    cp "$E2E_TMP/certs/server.orig.key" "$E2E_TMP/certs/server.key"
  fi

  hub_init
  if [ ! -f "$E2E_TMP/certs/server.orig.pem" ]; then
    cp "$E2E_TMP/certs/server.pem" "$E2E_TMP/certs/server.orig.pem"
    cp "$E2E_TMP/certs/server.key" "$E2E_TMP/certs/server.orig.key"
  fi
  hub seed --plans 40 --seed 11 >/dev/null
  REGION=$(hub --json scope list | jq -r '[.[] | select(.scope | startswith("region:"))][0].scope')
  start_hub
  PORT=$HUB_PORT
  A="$E2E_TMP/$store/a"; B="$E2E_TMP/$store/b"; LATE="$E2E_TMP/$store/late"
  new_device "$A" tab-a "$REGION" urgent_care urgent_care
  new_device "$B" tab-b "$REGION" urgent_care urgent_care
  new_device "$LATE" tab-late "$REGION" urgent_care urgent_care
  for d in "$A" "$B" "$LATE"; do expect_exit 0 agent "$d" sync; done
  expect_exit 0 agent "$LATE" --json list
  LATE_PLANS=$(jget length)
  [ "$LATE_PLANS" -ge 1 ] || fail "no plans on the late device"

  # a new key and certificate from the same CA
  d="$E2E_TMP/certs"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/next.key" -out "$d/next.csr" 2>/dev/null
  openssl x509 -req -in "$d/next.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext.cnf" -out "$d/next.pem" 2>/dev/null
  chmod 600 "$d/next.key"

  expect_exit 2 hub tls rotate --next-key "$E2E_TMP/no-such.key"
  sleep 1   # the announcement's second must be behind the devices' next syncs
  expect_exit 0 hub --json tls rotate --next-key "$d/next.key"
  NEXT=$(jget .next_pin)
  expect_exit 0 hub --json tls status
  [ "$(jget .ready)" = false ] || fail "ready before any device synced"
  [ "$(jget .behind)" = 3 ] || fail "expected 3 devices behind: $(last_out)"
  sleep 1
  for dev in "$A" "$B"; do expect_exit 0 agent "$dev" sync; done
  expect_exit 0 hub --json tls status
  [ "$(jget .behind)" = 1 ] || fail "expected only the late device behind: $(last_out)"
  [ "$(jget '.devices_behind[0].name')" = tab-late ] || fail "late device not named: $(last_out)"
  pass "$store: next key announced; two devices pinned it at their sync; status names the one behind"

  # switch: the hub restarts with the new key
  stop_hub
  cp "$d/next.pem" "$d/server.pem"; cp "$d/next.key" "$d/server.key"
  start_hub "$PORT"
  expect_exit 0 hub --json tls status
  [ "$(jget .current_pin)" = "$NEXT" ] || fail "the hub does not serve the announced key"
  [ "$(jget .next_pin)" = "" ] || fail "rotation not completed at start"
  for dev in "$A" "$B"; do
    expect_exit 0 agent "$dev" sync
    if last_err | grep -q "TLS key changed"; then fail "a device that synced in the window needed the way back"; fi
  done
  pass "$store: the hub switched keys; both devices keep syncing without re-enrolment"

  expect_exit 0 agent "$LATE" sync
  last_err | grep -q "TLS key changed" || fail "the late device was not told: $(last_err)"
  expect_exit 0 agent "$LATE" --json list
  [ "$(jget length)" = "$LATE_PLANS" ] || fail "the late device lost its replica"
  expect_exit 0 agent "$LATE" sync
  pass "$store: a device that missed the window re-pins, vouched by the hub's signing key, replica kept"

  # an impostor: same CA, same address, another signing key
  stop_hub
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/evil.key" -out "$d/evil.csr" 2>/dev/null
  openssl x509 -req -in "$d/evil.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext.cnf" -out "$d/evil.pem" 2>/dev/null
  cp "$d/evil.pem" "$d/server.pem"; cp "$d/evil.key" "$d/server.key"
  HUB_DIR="$E2E_TMP/$store/impostor"
  if [ "$store" = postgresql ]; then CMC_HUB_DB=$(pg_fixture_db rotate_impostor) || fail "create database"; fi
  hub init >/dev/null
  start_hub "$PORT"
  expect_exit 1 agent "$A" sync
  last_err | grep -q "could not prove a new one" || fail "impostor refusal unclear: $(last_err)"
  last_err | grep -q "not signed by the hub key pinned" || fail "impostor refusal lacks why: $(last_err)"
  stop_hub
  pass "$store: a hub with a certificate from the same CA but not the hub's signing key is refused"
}

pg_fixture_both run_case rotate
