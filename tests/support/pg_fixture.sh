#!/usr/bin/env bash
# pg_fixture.sh - a throwaway PostgreSQL 15 for the tests, sourced by test scripts and by
# tests/support/pg_run.sh.
#
#   pg_fixture_start     initdb into a new temporary directory, start the server on a free
#                        port of 127.0.0.1 with its socket in a private directory, create the
#                        database cmc_test; sets PG_FIXTURE_URL (postgresql://...) and
#                        PG_FIXTURE_DIR. Run as root, the server runs as the `postgres` system
#                        user (PostgreSQL refuses to run as root). Returns non-zero with the
#                        reason in PG_FIXTURE_WHY when it cannot start.
#   pg_fixture_stop      stops the server (immediate mode) and removes the directory; safe
#                        to call twice. Callers install it in an EXIT trap, so the server is
#                        stopped on failure too.
#   pg_fixture_db NAME   creates database NAME on the running server and prints its URL.
#   pg_fixture_both FUNC NAME
#                        an end-to-end test on both stores: FUNC sqlcipher without
#                        CMC_HUB_DB, then the server started and FUNC postgresql with
#                        CMC_HUB_DB on a new database NAME; when the server cannot start,
#                        says why and exits 77 (skipped) after the SQLCipher half.
#
# Trust authentication on 127.0.0.1 only: the server lives as long as one test run. Tests
# run it with fsync off (nothing they check needs the disk); PG_FIXTURE_FSYNC=on keeps the
# server's default, as bench/pg.sh does so its figures include the WAL flushes.

pg_fixture_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
  return 1
}

# Runs a command as the server's owner (postgres when we are root, else ourselves).
pg_fixture_as() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

pg_fixture_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null
}

pg_fixture_start() {
  local bin port log i
  PG_FIXTURE_WHY=""
  if ! bin=$(pg_fixture_bin); then
    PG_FIXTURE_WHY="PostgreSQL server binaries (initdb, pg_ctl) not installed (apt-get install postgresql-15)"
    return 1
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    PG_FIXTURE_WHY="running as root and there is no postgres system user to run the server"
    return 1
  fi
  PG_FIXTURE_DIR=$(mktemp -d /tmp/cmc-pg.XXXXXX) || { PG_FIXTURE_WHY="mktemp failed"; return 1; }
  chmod 700 "$PG_FIXTURE_DIR"
  mkdir -p "$PG_FIXTURE_DIR/sock"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$PG_FIXTURE_DIR"; fi
  log="$PG_FIXTURE_DIR/server.log"
  if ! pg_fixture_as "$bin/initdb" -D "$PG_FIXTURE_DIR/data" -U postgres --auth=trust \
       --no-sync -E UTF8 --locale=C >"$PG_FIXTURE_DIR/initdb.log" 2>&1; then
    PG_FIXTURE_WHY="initdb failed: $(tail -n 1 "$PG_FIXTURE_DIR/initdb.log")"
    return 1
  fi
  for i in 1 2 3; do
    port=$(pg_fixture_free_port) || { PG_FIXTURE_WHY="no free port (python3 missing?)"; return 1; }
    if pg_fixture_as "$bin/pg_ctl" -D "$PG_FIXTURE_DIR/data" -l "$log" -w -t 30 \
         -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_FIXTURE_DIR/sock -c fsync=${PG_FIXTURE_FSYNC:-off} -c max_connections=200" \
         start >/dev/null 2>&1; then
      PG_FIXTURE_PORT=$port
      PG_FIXTURE_BIN=$bin
      PG_FIXTURE_URL="postgresql://postgres@127.0.0.1:$port/cmc_test"
      if ! "$bin/psql" -q -X -h 127.0.0.1 -p "$port" -U postgres -d postgres \
           -c "CREATE DATABASE cmc_test" >/dev/null 2>&1 &&
         ! psql -q -X -h 127.0.0.1 -p "$port" -U postgres -d postgres \
           -c "CREATE DATABASE cmc_test" >/dev/null 2>&1; then
        PG_FIXTURE_WHY="CREATE DATABASE failed"
        return 1
      fi
      export PG_FIXTURE_URL PG_FIXTURE_PORT PG_FIXTURE_DIR PG_FIXTURE_BIN
      return 0
    fi
  done
  PG_FIXTURE_WHY="the server did not start: $(tail -n 1 "$log" 2>/dev/null)"
  return 1
}

pg_fixture_db() {
  local psql=psql
  [ -x "$PG_FIXTURE_BIN/psql" ] && psql="$PG_FIXTURE_BIN/psql"
  "$psql" -q -X -h 127.0.0.1 -p "$PG_FIXTURE_PORT" -U postgres -d postgres \
    -c "CREATE DATABASE $1" >/dev/null || return 1
  echo "postgresql://postgres@127.0.0.1:$PG_FIXTURE_PORT/$1"
}

pg_fixture_stop() {
  if [ -n "${PG_FIXTURE_DIR:-}" ] && [ -d "$PG_FIXTURE_DIR" ]; then
    if [ -n "${PG_FIXTURE_BIN:-}" ] && [ -f "$PG_FIXTURE_DIR/data/postmaster.pid" ]; then
      pg_fixture_as "$PG_FIXTURE_BIN/pg_ctl" -D "$PG_FIXTURE_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_FIXTURE_DIR"
  fi
  PG_FIXTURE_DIR=""
}

pg_fixture_both() {
  local fn=$1 db=$2
  unset CMC_HUB_DB
  "$fn" sqlcipher
  if ! pg_fixture_start; then
    echo "skip: PostgreSQL could not start: $PG_FIXTURE_WHY (the SQLCipher half passed)"
    exit 77
  fi
  CMC_HUB_DB=$(pg_fixture_db "$db") || { echo "FAIL: cannot create database $db" >&2; exit 1; }
  export CMC_HUB_DB
  "$fn" postgresql
}
