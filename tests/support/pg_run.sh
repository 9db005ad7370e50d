#!/usr/bin/env bash
# pg_run.sh KIND PROGRAM... - runs test programs again with the hub on PostgreSQL: starts a
# throwaway PostgreSQL 15 (tests/support/pg_fixture.sh), sets CMC_TEST_HUB_DB to it, runs
# scripts/run-tests.sh KIND PROGRAM... and stops the server whatever happens. When the server
# cannot start, every program is counted as skipped, with the reason (never as passed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-build}
kind=$1; shift
# shellcheck source=tests/support/pg_fixture.sh
. "$here/pg_fixture.sh"
trap pg_fixture_stop EXIT
if ! pg_fixture_start; then
  mkdir -p "$build/test-logs"
  for t in "$@"; do
    printf '  skip  %-40s %3ss  skip: %s\n' "$(basename "$t")" 0 "$PG_FIXTURE_WHY"
  done
  echo "0 0 $#" > "$build/test-logs/summary-$kind"
  echo "$kind: 0 passed, 0 failed, $# skipped (PostgreSQL: $PG_FIXTURE_WHY)"
  exit 0
fi
CMC_TEST_HUB_DB=$PG_FIXTURE_URL BUILD="$build" "$here/../../scripts/run-tests.sh" "$kind" "$@"
