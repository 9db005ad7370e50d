#!/usr/bin/env bash
# Network faults (H-14, H-06, H-03): agent --TLS--> stunnel --plain--> fault_proxy --plain--> cmc-hub.
# TLS ends in front of the proxy, so cut, reset, stalled, slowed and bit-flipped streams reach
# the agent's own framing and bundle verification (inside TLS a flipped bit would only ever be
# a connection error). After every fault the replica verifies and is either unchanged or at a
# later cursor holding a subset of the final plans at their final versions - never part of a
# bundle; once the fault clears, the next sync completes and equals an undisturbed replica.
. "$(dirname "$0")/lib.sh"

command -v stunnel4 >/dev/null || fail "stunnel4 is missing (scripts/install-deps.sh installs it)"
REGION=south-east-london
hub_init
hub seed --plans 2000 --seed 11 >/dev/null

serve_plain
start_fault_proxy

TLS_PORT=$(free_port)
cat >"$E2E_TMP/stunnel.conf" <<CONF
foreground = yes
pid =
debug = 3
output = $E2E_TMP/stunnel.log
[cmc]
accept = 127.0.0.1:$TLS_PORT
connect = 127.0.0.1:$PROXY_PORT
cert = $E2E_TMP/certs/server.pem
key = $E2E_TMP/certs/server.key
CONF
stunnel4 "$E2E_TMP/stunnel.conf" >/dev/null 2>&1 &
STUNNEL_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$TLS_PORT/" && break; sleep 0.05; done
HUB_URL="https://127.0.0.1:$TLS_PORT"
stop_all() {
  kill "$STUNNEL_PID" "$PROXY_PID" 2>/dev/null || true
  wait "$STUNNEL_PID" "$PROXY_PID" 2>/dev/null || true
}
trap 'stop_all; e2e_cleanup' EXIT

snapshot() { agent "$1" list --json | jq -r '.plans[] | "\(.plan_id) \(.version) \(.status)"' | sort; }
cursor_of() { agent "$1" status --json | jq -r .cursor; }

REF="$E2E_TMP/ref"
new_device "$REF" ref "region:$REGION" urgent_care urgent_care
expect_exit 0 agent "$REF" sync
snapshot "$REF" >"$E2E_TMP/ref.snap"
TOTAL=$(wc -l <"$E2E_TMP/ref.snap")
[ "$TOTAL" -gt 100 ] || fail "the region should hold hundreds of plans, got $TOTAL"

# consistent DIR LABEL PREV_CURSOR: verify passes, cursor did not go back, every plan held is
# one of the final plans at its final version (no half-applied bundle, no stray version).
consistent() {
  local dir=$1 label=$2 prev=$3
  expect_exit 0 agent "$dir" verify
  local c; c=$(cursor_of "$dir")
  [ "$c" -ge "$prev" ] || fail "[$label] the cursor went back ($prev -> $c)"
  snapshot "$dir" >"$E2E_TMP/now.snap"
  local extra; extra=$(comm -23 "$E2E_TMP/now.snap" "$E2E_TMP/ref.snap" | head -n 3)
  [ -z "$extra" ] || fail "[$label] plans not in the final view: $extra"
  echo "$c"
}

FAULTS=("cut 3000" "cut 45000" "reset 20000" "cutall 60000" "resetall 20000" "flip 4000" "flip 131" "latency 20" "bw 200000")
[ -n "${CMC_TORTURE:-}" ] && FAULTS+=("stall 60000" "reset 150" "reset 90000" "cutall 100000" "resetall 7000"
  "flip 65537" "flip 997" "bw 20000" "latency 200")
i=0
for fault in "${FAULTS[@]}"; do
  i=$((i + 1))
  dev="$E2E_TMP/dev$i"
  echo none >"$FAULT_CFG"
  new_device "$dev" "dev$i" "region:$REGION" urgent_care urgent_care
  echo "$fault" >"$FAULT_CFG"
  set +e
  CMC_PAGE_BUDGET=16384 timeout 300 "$AGENT" --dir "$dev" sync >"$E2E_TMP/f.out" 2>"$E2E_TMP/f.err"
  rc=$?
  set -e
  [ "$rc" -ne 124 ] || fail "[$fault] the agent hung"
  if [ "$rc" -eq 0 ]; then
    # the agent's retries may carry a sync through a fault that hits each connection once;
    # a success must then be complete and exact
    cmp -s <(snapshot "$dev") "$E2E_TMP/ref.snap" || fail "[$fault] a sync reported success with a partial replica"
  else
    [ "$(wc -l <"$E2E_TMP/f.err")" -eq 1 ] || fail "[$fault] one error line expected: $(cat "$E2E_TMP/f.err")"
    # a dropped connection is a network problem, never "the hub does not recognise this device"
    ! grep -qi "replay\|401" "$E2E_TMP/f.err" || fail "[$fault] a network fault reported as a refusal: $(cat "$E2E_TMP/f.err")"
  fi
  c=$(consistent "$dev" "$fault" 0)
  held=$(wc -l <"$E2E_TMP/now.snap")
  echo none >"$FAULT_CFG"
  expect_exit 0 agent "$dev" sync
  consistent "$dev" "$fault, cleared" "$c" >/dev/null
  cmp -s "$E2E_TMP/now.snap" "$E2E_TMP/ref.snap" || fail "[$fault] after the fault cleared the replica differs"
  pass "[$fault] exit $rc, $held of $TOTAL plans at cursor $c, then complete: $(head -c 120 "$E2E_TMP/f.err")"
done
