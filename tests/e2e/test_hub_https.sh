#!/usr/bin/env bash
# End to end, the real `cmc-hub` binary: the CLI lifecycle and its exit codes, then
# `cmc-hub serve` on 127.0.0.1 over HTTPS (throwaway CA and certificate made with openssl)
# answering bad, unsigned, malformed and oversized requests with clear HTTP errors, and
# still serving afterwards. The signed-request paths (enroll, pull, push, replay, revoked)
# run over HTTPS in tests/unit/test_hub_server.c.
. "$(dirname "$0")/lib.sh"

REGION=south-east-london
TEAM=peckham-district-nursing

hub_init_users
hub user add admin1 --role admin >/dev/null
expect_exit 2 hub user add x --role pilot

# ---- lifecycle through the CLI -------------------------------------------------------------
hub seed --plans 50 --seed 3 >/dev/null || fail "seed"
expect_exit 0 hub --json plan list --status draft
DRAFT=$(jget '.[0].plan_id')
[ -n "$DRAFT" ] && [ "$DRAFT" != null ] || fail "no seeded draft"
expect_exit 0 hub --json plan list --status awaiting_approval
AWAIT=$(jget '.[0].plan_id')
AWAIT_NHS=$(jget '.[0].nhs_number')

expect_exit 2 hub plan approve "$AWAIT" --as admin1
last_err | grep -q "only a gp" || fail "admin refusal does not say why: $(last_err)"
expect_exit 2 hub plan approve "$AWAIT" --as nurse1
expect_exit 0 hub --json plan approve "$AWAIT_NHS" --as gp1
[ "$(jget .status)" = published ] || fail "approve did not publish"
expect_exit 0 hub --json plan show "$AWAIT"
[ "$(jget .approved_by)" = gp1 ] || fail "approved_by not set"
[ "$(jget .review_due)" != null ] || fail "review_due not kept"

# an edit of a published plan is a new draft; the published version stays
printf '{"set": {"prognosis": "days"}}\n' >"$E2E_TMP/change.json"
expect_exit 0 hub plan edit "$AWAIT" --as nurse1 --file "$E2E_TMP/change.json"
expect_exit 0 hub --json plan list
[ "$(jq -r --arg id "$AWAIT" '.[] | select(.plan_id == $id) | .status' "$E2E_TMP/last.out")" = draft ] \
  || fail "edit did not make a draft"
[ "$(jq -r --arg id "$AWAIT" '.[] | select(.plan_id == $id) | .published_version' "$E2E_TMP/last.out")" -ge 1 ] \
  || fail "the published version was lost"

expect_exit 2 hub plan show 9434765918          # wrong check digit
last_err | grep -q "check digit" || fail "no check-digit message: $(last_err)"
expect_exit 3 hub plan show 9434765919          # valid, not on the hub
expect_exit 2 hub plan frobnicate x --as gp1

expect_exit 2 hub plan withdraw-consent "$AWAIT" --as admin1 --reason "patient request"
expect_exit 0 hub --json plan withdraw-consent "$AWAIT" --as gp1 --reason "patient request"
[ "$(jget .consent_withdrawn)" = true ] || fail "consent not withdrawn"
expect_exit 1 hub plan submit "$AWAIT" --as nurse1

# devices: the code is on the last line
hub device add tablet --scope "region:$REGION" --role urgent_care >"$E2E_TMP/dev.out" || fail "device add"
CODE=$(tail -n 1 "$E2E_TMP/dev.out")
[[ "$CODE" =~ ^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$ ]] || fail "bad code line: $CODE"
expect_exit 2 hub device add bad --scope planet:mars --role urgent_care
expect_exit 0 hub --json device list
DEV=$(jget '.[0].device_id')
[ "$(jget '.[0].state')" = pending ] || fail "new device not pending"
expect_exit 0 hub device wipe "$DEV"
expect_exit 0 hub device revoke "$DEV"
expect_exit 3 hub device revoke 00000000-0000-4000-8000-000000000000
expect_exit 0 hub --json caseload add "$TEAM" "943 476 5919"
expect_exit 3 hub caseload remove other-team 9434765919

# the same seed makes the same plans in another hub
HUB2="$E2E_TMP/hub2"
"$HUB" --dir "$HUB2" init >/dev/null
"$HUB" --dir "$HUB2" seed --plans 50 --seed 3 >/dev/null
"$HUB" --dir "$HUB2" --json plan show "$DRAFT" >"$E2E_TMP/a.json" || fail "plan missing from hub2"
hub --json plan show "$DRAFT" >"$E2E_TMP/b.json"
cmp -s "$E2E_TMP/a.json" "$E2E_TMP/b.json" || fail "same seed, different plan"
pass "CLI lifecycle, devices, caseloads, seeding"

# ---- the server over HTTPS -----------------------------------------------------------------
CMC_LOG=info start_hub   # log every request, to check below that no patient data is logged
URL="$HUB_URL"
c() { curl -s --cacert "$CA" -o "$E2E_TMP/body" -w '%{http_code}' "$@"; }

# enroll with a bad code: a 4xx with a JSON error
printf '\x83\xa4code\xb3AAAA-BBBB-CCCC-DDDD\xa9device_pk\xc4\x20%s\xa4name\xa3tab' \
  "$(head -c 32 /dev/zero | tr '\0' 'k')" >"$E2E_TMP/enroll.bin"
code=$(c -X POST -H 'Content-Type: application/msgpack' --data-binary @"$E2E_TMP/enroll.bin" "$URL/v1/enroll")
[ "$code" = 401 ] || fail "bad code: HTTP $code"
[ "$(jq -r .error "$E2E_TMP/body")" = unauthorized ] || fail "bad code: body $(cat "$E2E_TMP/body")"

# an unsigned pull
code=$(c "$URL/v1/pull?cursor=0")
[ "$code" = 401 ] || fail "unsigned pull: HTTP $code"
jq -e .message "$E2E_TMP/body" >/dev/null || fail "unsigned pull: no JSON message"

# a forged signature from an unknown device
code=$(c -H "X-CMC-Device: 00000000-0000-4000-8000-000000000000" -H "X-CMC-Time: $(date +%s)" \
  -H "X-CMC-Nonce: 0123456789abcdef0123456789abcdef" -H "X-CMC-Signature: $(printf '%0128d' 0)" \
  "$URL/v1/pull?cursor=0")
[ "$code" = 401 ] || fail "unknown device: HTTP $code"

# malformed bodies
code=$(c -X POST --data-binary 'not msgpack at all' "$URL/v1/enroll")
[ "$code" = 400 ] || fail "malformed enroll: HTTP $code"
code=$(c -X GET "$URL/v1/enroll")
[ "$code" = 405 ] || fail "wrong method: HTTP $code"
code=$(c "$URL/v1/nothing")
[ "$code" = 404 ] || fail "unknown endpoint: HTTP $code"

# an oversized body
head -c $((2 * 1024 * 1024)) /dev/zero >"$E2E_TMP/big.bin"
code=$(c -X POST --data-binary @"$E2E_TMP/big.bin" "$URL/v1/push")
[ "$code" = 413 ] || fail "oversized body: HTTP $code"
# chunked, with no length announced
code=$(c -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$E2E_TMP/big.bin" "$URL/v1/audit")
[ "$code" = 413 ] || fail "oversized chunked body: HTTP $code"

# a burst of garbage, then the server still answers
for i in $(seq 1 20); do
  head -c $((i * 97)) /dev/urandom >"$E2E_TMP/junk.bin"
  c -X POST --data-binary @"$E2E_TMP/junk.bin" "$URL/v1/enroll" >/dev/null || true
done
kill -0 "$HUB_PID" || fail "the hub died"
code=$(c "$URL/v1/pull?cursor=0")
[ "$code" = 401 ] || fail "hub not answering after bad input: HTTP $code"
# plain HTTP on the TLS port gets nothing served
if curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$HUB_PORT/v1/pull?cursor=0" -w '%{http_code}' | grep -q '^200$'; then
  fail "plain HTTP was served"
fi
# nothing patient-related in the server log
if grep -E '[0-9]{10}' "$E2E_TMP/hub.log" | grep -vE 'cursor|device|port' >/dev/null; then
  fail "the server log holds a number that looks like an NHS number"
fi
stop_hub
pass "HTTPS errors: bad code, unsigned, unknown device, malformed, oversized; server survives"
