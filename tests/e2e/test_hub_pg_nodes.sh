#!/usr/bin/env bash
# End to end: two `cmc-hub serve` nodes on one PostgreSQL database behind a round-robin TCP
# forwarder standing in for the load balancer (tests/tools/rr_forward.c).
#   - devices enroll through the one address and reach both nodes;
#   - a plan published once (by the command line, a third process) reaches both devices,
#     whichever node answers;
#   - a signed request one node has answered is refused by the other (nonces in the database);
#   - one node killed with SIGKILL mid-sync: the device finishes through the other, with the
#     same replica as a device that synced without interruption.
# Skipped (exit 77, with the reason) when no PostgreSQL 15 can be started here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/pg_fixture.sh"

RR_PID=
N1_PID=
N2_PID=
cleanup_nodes() {
  local p
  for p in $RR_PID $N1_PID $N2_PID; do kill "$p" 2>/dev/null || true; done
  pg_fixture_stop
  e2e_cleanup
}
trap cleanup_nodes EXIT

if ! pg_fixture_start; then
  echo "skip: PostgreSQL could not start: $PG_FIXTURE_WHY"
  exit 77
fi
CMC_HUB_DB=$(pg_fixture_db nodes) || fail "create database"
export CMC_HUB_DB

REGION=south-east-london
hub init >/dev/null || fail "cmc-hub init on PostgreSQL"
hub user add gp1 --role gp >/dev/null
hub user add nurse1 --role clinician >/dev/null
hub seed --plans 3000 --seed 7 >/dev/null
# the second node: its own directory, the same key file (it seals the signing key)
NODE2_DIR="$E2E_TMP/hub2"
mkdir -m 700 "$NODE2_DIR"
cp "$HUB_DIR/hub.key" "$NODE2_DIR/hub.key"
chmod 600 "$NODE2_DIR/hub.key"

# start_node DIR LOG: plain http on loopback (the forwarder records requests to replay them)
start_node() {
  local dir=$1 log=$2 port i
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 12000 ))
    CMC_LOG=info "$HUB" --dir "$dir" serve --listen "127.0.0.1:$port" >>"$log" 2>&1 &
    NODE_PID=$!
    for i in $(seq 1 100); do
      if curl -s -o /dev/null "http://127.0.0.1:$port/"; then NODE_PORT=$port; return 0; fi
      kill -0 "$NODE_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$NODE_PID" 2>/dev/null || true
  done
  cat "$log" >&2
  fail "a hub node did not start"
}
start_node "$HUB_DIR" "$E2E_TMP/node1.log"; N1_PID=$NODE_PID; N1_PORT=$NODE_PORT
start_node "$NODE2_DIR" "$E2E_TMP/node2.log"; N2_PID=$NODE_PID; N2_PORT=$NODE_PORT

REC="$E2E_TMP/rr"
mkdir -p "$REC"
RR_RECORD="$REC" "$BUILD/tests/tools/rr_forward" "$E2E_TMP/rr.port" "127.0.0.1:$N1_PORT" \
  "127.0.0.1:$N2_PORT" 2>>"$E2E_TMP/rr.log" &
RR_PID=$!
for _ in $(seq 1 50); do [ -s "$E2E_TMP/rr.port" ] && break; sleep 0.1; done
[ -s "$E2E_TMP/rr.port" ] || fail "the forwarder did not start"
HUB_URL="http://127.0.0.1:$(cat "$E2E_TMP/rr.port")"

node_saw() { grep -c "request $2" "$E2E_TMP/node$1.log" || true; }

# ---- enrollment through the one address reaches both nodes ------------------------------
new_plain_device() {
  local dir=$1 name=$2 code
  code=$(hub device add "$name" --scope "region:$REGION" --role urgent_care | tail -n 1)
  agent "$dir" init --user "$name-user" --role urgent_care >/dev/null || fail "init $name"
  agent "$dir" enroll --hub "$HUB_URL" --code "$code" --name "$name" >/dev/null || fail "enroll $name"
}
for d in a b c d; do new_plain_device "$E2E_TMP/dev-$d" "dev-$d"; done
e1=$(node_saw 1 "POST enroll"); e2=$(node_saw 2 "POST enroll")
[ "$e1" -ge 1 ] && [ "$e2" -ge 1 ] || fail "enrollments should reach both nodes (node1 $e1, node2 $e2)"
pass "four devices enrolled through one address: node1 $e1, node2 $e2"

# ---- a plan published once reaches both devices, whichever node answers ------------------
expect_exit 0 agent "$E2E_TMP/dev-a" sync --json
TOTAL=$(jget .puts)
[ "$TOTAL" -gt 300 ] || fail "the region should hold hundreds of plans, got $TOTAL"
expect_exit 0 agent "$E2E_TMP/dev-b" sync --json
[ "$(jget .puts)" -eq "$TOTAL" ] || fail "both devices should hold the region ($(jget .puts) vs $TOTAL)"
jq '.nhs_number = "4857773007" | .plan_id = "33333333-4444-4555-8666-777777777777"' \
  "$SHARED/examples/plan.json" >"$E2E_TMP/plan.json"
published=$(hub plan import "$E2E_TMP/plan.json" --as nurse1 | tail -n 1)
hub plan submit "$published" --as nurse1 >/dev/null || fail "submit"
hub plan approve "$published" --as gp1 >/dev/null || fail "approve"
p1=$(node_saw 1 "GET pull"); p2=$(node_saw 2 "GET pull")
for d in a b a b; do
  expect_exit 0 agent "$E2E_TMP/dev-$d" sync --json
done
for d in a b; do
  agent "$E2E_TMP/dev-$d" list --json | jq -e --arg id "$published" '.plans[] | select(.plan_id == $id)' >/dev/null ||
    fail "dev-$d does not hold the plan published after its first sync"
done
q1=$(node_saw 1 "GET pull"); q2=$(node_saw 2 "GET pull")
[ "$q1" -gt "$p1" ] && [ "$q2" -gt "$p2" ] || fail "both nodes should have served pulls (node1 $p1->$q1, node2 $p2->$q2)"
pass "a plan published once reached both devices; both nodes served pulls"

# ---- a request one node answered is refused by the other -----------------------------------
# the last recorded connection whose first request is a signed pull, and the node it went to
req=
for f in $(ls "$REC"/*.req | sort -t/ -k1 -V -r); do
  if head -c 64 "$f" | grep -q '^GET /v1/pull'; then req=$f; break; fi
done
[ -n "$req" ] || fail "no recorded pull request"
went=$(cat "${req%.req}.backend")
if [ "$went" = 0 ]; then other=$N2_PORT; other_n=2; else other=$N1_PORT; other_n=1; fi
# only the first request of that connection, exactly as the device sent it
status=$(python3 - "$req" "$other" <<'PY'
import socket, sys
data = open(sys.argv[1], 'rb').read()
head, _, rest = data.partition(b'\r\n\r\n')
one = head + b'\r\n\r\n'
s = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
s.sendall(one)
s.shutdown(socket.SHUT_WR)
resp = b''
while True:
    b = s.recv(4096)
    if not b: break
    resp += b
status = resp.split(b'\r\n', 1)[0].decode()
print(status + (' replay' if b'"error":"replay"' in resp else ''))
PY
)
echo "$status" | grep -q ' 401 ' || fail "the replay to node $other_n was answered: $status"
echo "$status" | grep -q ' replay$' || fail "node $other_n refused it, but not as a replay: $status"
pass "a request answered by one node was refused by the other as a replay ($status)"

# ---- one node killed mid-sync: the device finishes through the other ------------------------
expect_exit 0 agent "$E2E_TMP/dev-c" status --json
before=$(ls "$REC"/*.backend | wc -l)
sync_under_way "$E2E_TMP/dev-c" || fail "the sync made no progress before the kill"
# the node serving that sync's newest connection
serving=$(cat "$(ls "$REC"/*.backend | sort -t/ -k1 -V | tail -n 1)")
if [ "$serving" = 0 ]; then kill -9 "$N1_PID"; N1_PID=; survivor=2; else kill -9 "$N2_PID"; N2_PID=; survivor=1; fi
set +e; wait $SYNC_PID; rc=$?; set -e
if [ "$rc" -ne 0 ]; then
  [ "$(wc -l <"$E2E_TMP/cut.err")" -eq 1 ] || fail "one error line expected, got: $(cat "$E2E_TMP/cut.err")"
  expect_exit 0 agent "$E2E_TMP/dev-c" verify
  expect_exit 0 agent "$E2E_TMP/dev-c" sync --json # through the surviving node
fi
[ "$(ls "$REC"/*.backend | wc -l)" -gt "$before" ] || fail "no connection was made"
last=$(cat "$(ls "$REC"/*.backend | sort -t/ -k1 -V | tail -n 1)")
[ "$last" = $((survivor - 1)) ] || fail "the sync's last connection should have gone to node $survivor"
snapshot() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort; }
expect_exit 0 agent "$E2E_TMP/dev-a" sync --json
[ "$(snapshot "$E2E_TMP/dev-c")" = "$(snapshot "$E2E_TMP/dev-a")" ] ||
  fail "the device that lost its node differs from one that synced without interruption"
pass "node killed at cursor $SYNC_CURSOR (sync exit $rc): the device finished through node $survivor"
