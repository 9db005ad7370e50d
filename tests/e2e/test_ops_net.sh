#!/usr/bin/env bash
# End to end, the hub's connection layer: TLS 1.0/1.1 refused and only AEAD suites offered;
# /healthz and /metrics; one log line per request naming the device by name and id; 300
# slow clients from one address (each trickling a header byte a second) neither stop a
# normal device syncing nor keep their connections past the request deadline; enrollment
# attempts past the per-address limit answered 429 with Retry-After.
. "$(dirname "$0")/lib.sh"

hub_init
hub seed --plans 40 --seed 7 >/dev/null
REGION=$(hub --json scope list | jq -r '[.[] | select(.scope | startswith("region:"))][0].scope')
printf 'request_deadline = 4\nper_ip_connections = 24\nenroll_per_minute = 3\n' >"$E2E_TMP/hub.conf"
export CMC_HUB_CONFIG="$E2E_TMP/hub.conf"
CMC_LOG=info start_hub
HOSTPORT="127.0.0.1:$HUB_PORT"

# ---- TLS versions and suites -----------------------------------------------------------------
s_client() { openssl s_client -connect "$HOSTPORT" -CAfile "$CA" "$@" </dev/null >"$E2E_TMP/tls.out" 2>&1; }
if s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'; then fail "TLS 1.1 accepted"; fi
if s_client -tls1 -cipher 'DEFAULT:@SECLEVEL=0'; then fail "TLS 1.0 accepted"; fi
s_client -tls1_2 || fail "TLS 1.2 refused: $(tail -n 5 "$E2E_TMP/tls.out")"
grep -Eq "Cipher is .*(GCM|CHACHA20)" "$E2E_TMP/tls.out" || fail "TLS 1.2 without an AEAD suite"
if s_client -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256'; then
  fail "a CBC suite was accepted"
fi
s_client -tls1_3 || fail "TLS 1.3 refused"
pass "TLS 1.2 and 1.3 with AEAD suites only; 1.0, 1.1 and CBC refused"

# ---- health and metrics ----------------------------------------------------------------------
[ "$(curl -s --cacert "$CA" "$HUB_URL/healthz")" = ok ] || fail "/healthz"
TABLET="$E2E_TMP/tablet"
new_device "$TABLET" amb-7 "$REGION" urgent_care urgent_care
expect_exit 0 agent "$TABLET" sync
curl -s --cacert "$CA" "$HUB_URL/metrics" >"$E2E_TMP/metrics" || fail "/metrics"
grep -Eq '^cmc_hub_requests_total\{endpoint="pull",status="200"\} [1-9]' "$E2E_TMP/metrics" || fail "no pull count"
grep -Eq '^cmc_hub_request_duration_seconds_bucket\{endpoint="pull",le="\+Inf"\} [1-9]' "$E2E_TMP/metrics" \
  || fail "no pull latency histogram"
grep -Eq '^cmc_hub_devices\{state="active"\} 1$' "$E2E_TMP/metrics" || fail "devices active"
for m in cmc_hub_pending_purges cmc_hub_audit_alarms cmc_hub_store_errors_total; do
  grep -q "^$m " "$E2E_TMP/metrics" || fail "no $m"
done
grep -Eq "request GET pull status 200 bytes [0-9]+ ms [0-9]+ device amb-7 \([0-9a-f-]{36}\)" "$E2E_TMP/hub.log" \
  || fail "no per-request log line naming the device: $(tail -n 3 "$E2E_TMP/hub.log")"
pass "/healthz, /metrics, and one log line per request with the device's name and id"

# ---- 300 slow clients from one address ---------------------------------------------------------
python3 "$(dirname "$0")/slow_clients.py" 127.0.0.1 "$HUB_PORT" 127.0.0.2 300 9 >"$E2E_TMP/slow.out" 2>&1 &
SLOW=$!
sleep 2
for i in 1 2 3; do
  expect_exit 0 agent "$TABLET" sync
done
wait $SLOW || fail "slow client driver failed: $(cat "$E2E_TMP/slow.out")"
read -r _ accepted _ closed < <(tail -n 1 "$E2E_TMP/slow.out")
[ "$accepted" -le 24 ] || fail "one address held $accepted connections (limit 24)"
[ "$closed" -eq "$accepted" ] || fail "$((accepted - closed)) trickling connections outlived the deadline"
[ "$(curl -s --cacert "$CA" "$HUB_URL/healthz")" = ok ] || fail "hub not answering after the slow clients"
pass "300 slow clients: $accepted accepted and all cut at the deadline; the device kept syncing"

# ---- enrollment rate limit -------------------------------------------------------------------------
for i in 1 2 3; do
  curl -s -o /dev/null --cacert "$CA" -X POST -d '{}' "$HUB_URL/v1/enroll"
done
code=$(curl -s -D "$E2E_TMP/h" -o /dev/null -w '%{http_code}' --cacert "$CA" -X POST -d '{}' "$HUB_URL/v1/enroll")
[ "$code" = 429 ] || fail "4th enrollment attempt in a minute answered $code"
grep -qi '^Retry-After: [1-9]' "$E2E_TMP/h" || fail "429 without Retry-After"
pass "enrollment attempts limited per address: 429 with Retry-After"
