#!/usr/bin/env bash
# make demo: a hub with synthetic London plans on 127.0.0.1 over HTTPS, an enrolled ambulance
# tablet, a sync, the hub stopped, and a lookup working with no hub at all.
# Leaves nothing running; its files stay in $DEMO_DIR for you to try more commands.
set -euo pipefail

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
AGENT="$BUILD/cmc-agent"
HUB="$BUILD/cmc-hub"
PLANS=${DEMO_PLANS:-3000}
DEMO_DIR=${DEMO_DIR:-$BUILD/demo}
REGION=south-east-london

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
chmod 700 "$DEMO_DIR"
HUB_PID=
cleanup() { if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

say "A throwaway certificate authority and a server certificate for 127.0.0.1"
C="$DEMO_DIR/certs"
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=cmc demo CA" -keyout "$C/ca.key" -out "$C/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$C/server.key" -out "$C/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$C/ext.cnf"
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 30 \
  -extfile "$C/ext.cnf" -out "$C/server.pem" 2>/dev/null
chmod 600 "$C"/*.key
echo "made $C/ca.pem and a server certificate signed by it"

say "The hub: an encrypted store, $PLANS synthetic London plans"
export CMC_HUB_DIR="$DEMO_DIR/hub"
"$HUB" init
"$HUB" seed --plans "$PLANS" --seed 42

PORT=$(( 20000 + RANDOM % 12000 ))
"$HUB" serve --listen "127.0.0.1:$PORT" --tls-cert "$C/server.pem" --tls-key "$C/server.key" \
  >"$DEMO_DIR/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null --cacert "$C/ca.pem" "https://127.0.0.1:$PORT/" && break
  sleep 0.1
done
echo "serving https://127.0.0.1:$PORT (log: $DEMO_DIR/hub.log)"

say "An ambulance tablet for $REGION: registered on the hub, replica made, enrolled"
CODE=$("$HUB" device add ambulance-tablet-7 --scope "region:$REGION" --role urgent_care | tail -n 1)
echo "one-time enrollment code: $CODE"
export CMC_AGENT_DIR="$DEMO_DIR/tablet"
PIN_FILE="$DEMO_DIR/pin"
(umask 077; echo "2468-demo" >"$PIN_FILE")   # a demo PIN; a crew types theirs at a prompt
"$AGENT" init --user paramedic1 --role urgent_care --pin-file "$PIN_FILE"
"$AGENT" enroll --hub "https://127.0.0.1:$PORT" --code "$CODE" --ca "$C/ca.pem" --name ambulance-tablet-7 \
  --pin-file "$PIN_FILE"

say "Sync: the region's published plans, verified and applied"
start=$(date +%s%N)
"$AGENT" sync --pin-file "$PIN_FILE"
end=$(date +%s%N)
echo "took $(( (end - start) / 1000000 )) ms, PIN unlock included"
"$AGENT" status --pin-file "$PIN_FILE"

say "The hub is stopped: the tablet is on its own now"
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=
NHS=$("$AGENT" list --json --pin-file "$PIN_FILE" | jq -r '.plans[0].nhs_number')
echo "looking up NHS number $NHS with no network:"
"$AGENT" lookup "$NHS" --pin-file "$PIN_FILE"

say "Try next"
cat <<EOF
  export CMC_AGENT_DIR=$DEMO_DIR/tablet      # the tablet's replica (PIN: $(cat "$PIN_FILE"), in $PIN_FILE)
  $AGENT lookup $NHS                 # type the PIN at the prompt
  $AGENT search --name smith --postcode SE15
  $AGENT lookup 9434765918                 # a wrong check digit: exit 2
  $AGENT verify                            # full integrity check of the replica
  export CMC_HUB_DIR=$DEMO_DIR/hub
  $HUB plan list --status draft            # drafts the tablet never received
Nothing is left running.
EOF
