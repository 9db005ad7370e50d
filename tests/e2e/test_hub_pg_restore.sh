#!/usr/bin/env bash
# End to end, on both stores (SQLCipher, then PostgreSQL): a hub restored from an earlier
# backup, with devices that had synced past it.
#   - `cmc-hub backup FILE` while serving (SQLCipher; pg_dump on PostgreSQL);
#   - a plan published after the backup, a tablet that synced it, a laptop with an edit
#     pending; the hub restored (`cmc-hub restore FILE`; pg_restore + `cmc-hub restore`);
#   - the tablet says "the hub was restored from an earlier backup; re-syncing", keeps its
#     copy (the lost plan included), re-syncs and then receives what the hub publishes next;
#   - the laptop re-syncs and pushes its pending edit again;
#   - before it re-syncs, the tablet reports the plan it holds from after the backup: the
#     only record of it when the old database is gone (on PostgreSQL the restore is marked
#     without --lost-from, so the report has nothing else to go on);
#   - `cmc-hub restore report` names both devices and how many changes each had seen, and
#     the plan lost with the backup by its id, with the tablet, which reported it (on
#     SQLCipher the store the copy replaced had the same record);
#   - on PostgreSQL, a second restore with --lost-from (the database renamed aside before
#     pg_restore) finds the same plan and device in the old database.
# The PostgreSQL half is skipped (exit 77 with the reason) when no server can start here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/pg_fixture.sh"
trap 'pg_fixture_stop; e2e_cleanup' EXIT

REGION=south-east-london
TEAM=peckham-district-nursing

# plan_file NHS ID: the example plan with its own identity
plan_file() {
  local f="$E2E_TMP/plan-$1.json"
  jq --arg nhs "$1" --arg id "$2" '.nhs_number = $nhs | .plan_id = $id' "$SHARED/examples/plan.json" >"$f"
  echo "$f"
}
publish() {
  local id
  id=$(hub plan import "$(plan_file "$1" "$2")" --as nurse1 | tail -n 1)
  hub plan submit "$id" --as nurse1 >/dev/null && hub plan approve "$id" --as gp1 >/dev/null || fail "publish $1"
  echo "$id"
}
holds() { agent "$1" list --json | jq -e --arg id "$2" '.plans[] | select(.plan_id == $id)' >/dev/null; }

run_case() {
  local store=$1
  HUB_DIR="$E2E_TMP/$store/hub"
  mkdir -p "$E2E_TMP/$store"
  hub_init
  hub user add gp1 --role gp >/dev/null
  hub user add nurse1 --role clinician >/dev/null
  P1=$(publish 9434765919 7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11)
  hub caseload add $TEAM 9434765919 >/dev/null
  start_hub
  TABLET="$E2E_TMP/$store/tablet"; LAPTOP="$E2E_TMP/$store/laptop"
  new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
  new_device "$LAPTOP" laptop "team:$TEAM" clinician clinician
  expect_exit 0 agent "$TABLET" sync
  expect_exit 0 agent "$LAPTOP" sync

  # the backup, taken while the hub serves
  if [ "$store" = sqlcipher ]; then
    expect_exit 0 hub backup "$E2E_TMP/$store/hub.backup"
    expect_exit 3 hub restore "$E2E_TMP/$store/none.backup"
    expect_exit 1 hub backup "$E2E_TMP/$store/hub.backup" # never overwrites
  else
    "$PG_FIXTURE_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -f "$E2E_TMP/$store/hub.dump" restore ||
      fail "pg_dump"
    expect_exit 2 hub backup "$E2E_TMP/$store/x" # PostgreSQL: its own tools, said so
  fi

  # after the backup: a plan published and synced, an edit left pending on the laptop
  P2=$(publish 4857773007 33333333-4444-4555-8666-777777777777)
  expect_exit 0 agent "$TABLET" sync
  holds "$TABLET" "$P2" || fail "$store: the tablet should hold the plan published after the backup"
  expect_exit 0 agent "$LAPTOP" sync # past the backup too, then offline with an edit
  echo '{"set": {"prognosis": "days to weeks"}}' >"$E2E_TMP/edit.json"
  expect_exit 0 agent "$LAPTOP" edit 9434765919 --file "$E2E_TMP/edit.json"

  # the restore: every node stopped first
  stop_hub
  if [ "$store" = sqlcipher ]; then
    expect_exit 0 hub restore "$E2E_TMP/$store/hub.backup"
  else
    psql -q -X -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -d postgres \
      -c "ALTER DATABASE restore RENAME TO restore_old" -c "CREATE DATABASE restore" >/dev/null ||
      fail "set the database aside"
    "$PG_FIXTURE_BIN/pg_restore" -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -d restore \
      "$E2E_TMP/$store/hub.dump" || fail "pg_restore"
    expect_exit 2 hub restore --lost-from "postgresql://postgres:secret@127.0.0.1:$PG_FIXTURE_PORT/restore_old"
    last_err | grep -q "not on the command line" || fail "a password on the command line: $(last_err)"
    expect_exit 0 hub restore # the old database lost: the devices' evidence is all there is
    expect_exit 0 hub restore report --json
    [ "$(jget '.lost_plans | length')" -eq 0 ] || fail "$store: nothing is known lost before a device reports: $(last_out)"
  fi
  expect_exit 0 hub plan list --json
  last_out | grep -q "$P2" && fail "$store: the restored hub should not have the plan published after the backup"
  start_hub "$HUB_PORT"

  expect_exit 0 agent "$TABLET" sync
  last_err | grep -q "the hub was restored from an earlier backup; re-syncing" ||
    fail "$store: the tablet should say the hub went back: $(last_err)"
  last_err | grep -q "told the hub this device holds 1 plans from after its backup" ||
    fail "$store: the tablet should report the plan it holds from after the backup: $(last_err)"
  holds "$TABLET" "$P1" || fail "$store: the tablet lost a plan the hub still has"
  holds "$TABLET" "$P2" || fail "$store: the tablet should keep its copy of the plan the hub lost"
  expect_exit 0 agent "$TABLET" verify
  pass "$store: the tablet found the hub behind it, said so, kept its copy and re-synced"

  expect_exit 0 agent "$LAPTOP" sync --json
  [ "$(jget .pushed)" -eq 1 ] || fail "$store: the laptop should push its pending edit again, pushed $(jget .pushed)"
  last_err | grep -q "restored from an earlier backup" || fail "$store: the laptop should say so too"
  expect_exit 0 hub plan show "$P1" --json
  last_out | grep -q "awaiting_approval" || fail "$store: the pushed edit should be awaiting approval"
  pass "$store: the laptop re-synced and pushed its pending edit again"

  # the new timeline reaches the devices: its changes never reuse the lost ones' numbers
  P3=$(publish 4010232137 11111111-2222-4333-8444-555555555555)
  expect_exit 0 agent "$TABLET" sync
  holds "$TABLET" "$P3" || fail "$store: a plan published after the restore should reach the tablet"
  last_err | grep -q "restored from an earlier backup" && fail "$store: the notice should come once"

  expect_exit 0 hub restore report --json
  [ "$(jget '.devices | length')" -eq 2 ] || fail "$store: the report should name both devices: $(last_out)"
  [ "$(jget '[.devices[] | select(.name == "tablet")][0].lost_changes')" -ge 1 ] ||
    fail "$store: the tablet had seen changes the hub lost"
  [ "$(jget '.epoch')" -eq 1 ] || fail "$store: one restore, epoch 1"
  [ "$(jget '.lost_plans | length')" -eq 1 ] || fail "$store: one plan was lost with the backup: $(last_out)"
  [ "$(jget '.lost_plans[0].plan_id')" = "$P2" ] || fail "$store: the lost plan by its id: $(last_out)"
  [ "$(jget '[.lost_plans[0].devices[].name] | join(",")')" = tablet ] ||
    fail "$store: the tablet had received the lost plan (the laptop's team never had it): $(last_out)"
  [ "$(jget '.lost_plans[0].devices[0].reported')" = true ] ||
    fail "$store: the tablet itself reported holding the lost plan: $(last_out)"
  [ "$(jget '.lost_plans[0].devices[0].source')" = "$([ "$store" = sqlcipher ] && echo store || echo device)" ] ||
    fail "$store: where the hub learnt of the lost plan: $(last_out)"
  expect_exit 0 hub restore report
  last_out | grep -Eq "lost plan $P2 \(version [0-9]+\): this hub no longer has that version; held by: tablet \([0-9a-f-]+, reported by the device\)" ||
    fail "$store: the report should name the lost plan and the device holding it: $(last_out)"
  pass "$store: restore report names the devices that had seen lost changes, and each lost plan with the devices that hold it, from their own evidence"

  if [ "$store" = postgresql ]; then
    # the same backup restored again beside it, this time with the old database at hand
    stop_hub
    psql -q -X -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -d postgres -c "CREATE DATABASE restore_again" >/dev/null ||
      fail "create a second database"
    "$PG_FIXTURE_BIN/pg_restore" -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -d restore_again \
      "$E2E_TMP/$store/hub.dump" || fail "pg_restore again"
    local again="postgresql://postgres@127.0.0.1:$PG_FIXTURE_PORT/restore_again"
    CMC_HUB_DB=$again expect_exit 0 hub restore --lost-from "postgresql://postgres@127.0.0.1:$PG_FIXTURE_PORT/restore_old"
    CMC_HUB_DB=$again expect_exit 0 hub restore report --json
    [ "$(jget '[.lost_plans[] | select(.plan_id == "'"$P2"'") | .devices[] | select(.source == "store") | .name] | join(",")')" = tablet ] ||
      fail "$store: --lost-from should find the lost plan and the tablet in the old database: $(last_out)"
    pass "$store: restore --lost-from reads the lost plans from the database as it was before"
    return
  fi
  stop_hub
}

pg_fixture_both run_case restore
