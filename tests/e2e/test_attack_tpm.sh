#!/usr/bin/env bash
# A key slot sealed to a TPM 2.0 (init --tpm), attacked as a thief with the device or with a
# copy of its files would: the test runs its own software TPMs (swtpm, each with a fresh
# state directory, stopped at the end whatever happens).
#   - init --tpm: the slot is marked TPM-bound, and the right PIN unlocks;
#   - a software slot added beside it keeps working throughout;
#   - the data directory copied to another machine (a second, fresh TPM): the right PIN
#     cannot unlock the TPM-bound slot; one clear line, non-zero exit, nothing changed;
#   - the binding cut out of the copied slot: the right PIN still cannot open it;
#   - no TPM reachable: one clear line, non-zero exit;
#   - wrong PINs trip the TPM's dictionary-attack lockout (set to 3 tries here), after which
#     the right PIN is refused too, until the lockout is cleared; the software slot is not
#     affected;
#   - the TPM cleared (its owner seed replaced): the slot can no longer be unlocked.
# Skipped (exit 77, with the reason) when swtpm or tpm2-tools are missing or swtpm cannot
# start; never passed without running.
. "$(dirname "$0")/lib.sh"

command -v swtpm >/dev/null || { echo "skip: swtpm is not installed (apt: swtpm swtpm-tools)"; exit 77; }
command -v tpm2_dictionarylockout >/dev/null ||
  { echo "skip: tpm2-tools is not installed (tpm2_dictionarylockout sets the test's lockout)"; exit 77; }

NHS=9434765919
RIGHT=crew-right-pin-1
NURSE=nurse-soft-pin-2
TPM_PIDS=()

tpm_stop() {
  local p
  for p in "${TPM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap 'tpm_stop; e2e_cleanup' EXIT

# A free port P with P + 1 free as well: the swtpm TCTI finds the control channel at P + 1.
free_port_pair() {
  python3 - <<'PY'
import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    print(p)
    break
PY
}

# start_tpm NAME: a fresh swtpm; sets TCTI_<NAME> to its TCTI string.
start_tpm() {
  local name=$1 state="$E2E_TMP/tpm-$1" port ctrl i
  mkdir -p "$state"
  port=$(free_port_pair); ctrl=$((port + 1))
  swtpm socket --tpm2 --tpmstate dir="$state" --flags not-need-init,startup-clear \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port="$ctrl",bindaddr=127.0.0.1 \
    --log file="$state/log" >"$state/out" 2>&1 &
  TPM_PIDS+=($!)
  for i in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$ctrl") 2>/dev/null; then
      printf -v "TCTI_$name" 'swtpm:host=127.0.0.1,port=%s' "$port"
      return 0
    fi
    kill -0 "${TPM_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "skip: swtpm could not start: $(tail -n 3 "$state/out" "$state/log" 2>/dev/null | tr '\n' ' ')"
  exit 77
}

# one_line: the last command's stderr holds exactly one error line (besides the throttle's
# notice that the unlock takes longer), naming no secret.
one_line() {
  [ "$(grep -c '^cmc-agent: ' "$E2E_TMP/last.err")" -eq 1 ] &&
    [ "$(grep -vc -e '^cmc-agent: ' -e '^Several wrong PINs' "$E2E_TMP/last.err")" -eq 0 ] ||
    fail "expected one error line, got: $(last_err)"
  ! grep -q -e "$RIGHT" -e "$NURSE" "$E2E_TMP/last.err" || fail "an error line carries a PIN"
}

start_tpm A
start_tpm B
DEV="$E2E_TMP/dev"
export CMC_TPM_TCTI=$TCTI_A

# 1. A TPM-bound first user, a software second user.
expect_exit 0 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" init --user crew --role clinician --tpm
expect_exit 0 env CMC_PIN=$RIGHT CMC_NEW_PIN=$NURSE "$AGENT" --dir "$DEV" --user crew user add nurse \
  --role urgent_care
expect_exit 0 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew user list --json
[ "$(jget '.users[] | select(.user == "crew") | .tpm')" = true ] || fail "crew's slot is not marked TPM-bound"
[ "$(jget '.users[] | select(.user == "nurse") | .tpm')" = false ] || fail "nurse's software slot is marked TPM"
expect_exit 0 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew user list
last_out | grep -q "^crew .*clinician (TPM)" || fail "user list does not mark crew's slot: $(last_out)"
expect_exit 3 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew lookup $NHS
expect_exit 3 env CMC_PIN=$NURSE "$AGENT" --dir "$DEV" --user nurse lookup $NHS
pass "init --tpm seals crew's slot to the TPM; the right PIN unlocks it; a software slot beside it unlocks"

# 2. The files copied to another machine, with its own (fresh) TPM.
COPY="$E2E_TMP/copy"
mkdir -m 700 "$COPY"
cp -p "$DEV"/keyslots "$DEV"/replica.db "$DEV"/clinical.db "$COPY"/
sum_before=$(sha256sum "$COPY/replica.db" "$COPY/clinical.db")
expect_exit 4 env CMC_TPM_TCTI=$TCTI_B CMC_PIN=$RIGHT "$AGENT" --dir "$COPY" --user crew lookup $NHS
last_err | grep -q "sealed to another TPM" || fail "the copy's refusal does not say why: $(last_err)"
one_line
[ "$(sha256sum "$COPY/replica.db" "$COPY/clinical.db")" = "$sum_before" ] || fail "a refused unlock changed the copy"
pass "the slot file copied to another machine: the right PIN is refused there (sealed to another TPM)"

# The binding stripped from the copy (wrap 3 -> 2, the TPM object's blobs cut out): the slot
# is not thereby a software slot that the PIN opens, so it cannot be guessed at offline.
STRIP="$E2E_TMP/strip"
mkdir -m 700 "$STRIP"
cp -p "$COPY"/* "$STRIP"/
python3 - "$STRIP/keyslots" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = 28                                   # slot 0 (crew): its wrap byte
assert b[i] == 3, "crew's slot is not wrap 3"
j = i + 1
j += 1 + b[j]                            # user name
j += 1 + b[j]                            # role
j += 1 + 8 + 8 + 16 + 32 + 1             # KDF, salt, public key, P
pub = b[j] | b[j + 1] << 8
priv = b[j + 2 + pub] | b[j + 3 + pub] << 8
del b[j:j + 4 + pub + priv + 34]         # the blobs and the parent's name
b[i] = 2
open(p, "wb").write(bytes(b))
PY
expect_exit 4 env CMC_TPM_TCTI=$TCTI_B CMC_PIN=$RIGHT "$AGENT" --dir "$STRIP" --user crew lookup $NHS
last_err | grep -q "wrong user or PIN" || fail "a stripped binding: $(last_err)"
pass "the TPM binding cut out of the slot: the right PIN still cannot open it"

expect_exit 1 env CMC_TPM_TCTI=swtpm:host=127.0.0.1,port=1 CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew \
  lookup $NHS
last_err | grep -q "no TPM could be reached" || fail "no TPM: the refusal does not say why: $(last_err)"
one_line
# the crew's page says the same, not "wrong PIN" (the right PIN cannot help)
JAR="$E2E_TMP/jar"
page() { curl -s -b "$JAR" -c "$JAR" -o "$E2E_TMP/page.html" -w '%{http_code}' "$@"; }
PORT=$(( 20000 + RANDOM % 12000 ))
CMC_TPM_TCTI=swtpm:host=127.0.0.1,port=1 "$AGENT" --dir "$DEV" serve --listen "127.0.0.1:$PORT" \
  >"$E2E_TMP/serve.log" 2>&1 &
SERVE_PID=$!
for i in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/style.css" && break; sleep 0.1; done
[ "$(page "http://127.0.0.1:$PORT/")" = 200 ] || fail "the unlock page"
pre=$(sed -n 's/.*name="pre" value="\([0-9a-f]*\)".*/\1/p' "$E2E_TMP/page.html" | head -n 1)
code=$(page --data-urlencode "pre=$pre" --data-urlencode "user=crew" --data-urlencode "pin=$RIGHT" \
  "http://127.0.0.1:$PORT/unlock")
kill $SERVE_PID; wait $SERVE_PID 2>/dev/null || true
[ "$code" = 503 ] || fail "the page without its TPM: expected 503, got $code"
grep -q "no TPM could be reached" "$E2E_TMP/page.html" || fail "the page does not say the TPM is unreachable"
grep -q "Wrong user or PIN" "$E2E_TMP/page.html" && fail "the page blames the PIN when the TPM is missing"
expect_exit 3 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew lookup $NHS
pass "without its TPM the slot says so in one line (terminal and page); back on its TPM it unlocks (nothing lost)"

# 3. The TPM's dictionary-attack lockout: 3 wrong authorisations, then nothing is let through.
export TPM2TOOLS_TCTI=$TCTI_A
tpm2_dictionarylockout --clear-lockout >/dev/null 2>&1 || fail "tpm2_dictionarylockout --clear-lockout failed"
tpm2_dictionarylockout --setup-parameters --max-tries=3 --recovery-time=3600 --lockout-recovery-time=3600 \
  >/dev/null 2>&1 || fail "tpm2_dictionarylockout could not set the lockout parameters"
wrong=0 locked=0
for i in 1 2 3 4 5; do
  expect_exit 4 env CMC_PIN=wrong-pin-$i "$AGENT" --dir "$DEV" --user crew lookup $NHS
  wrong=$((wrong + 1))
  if last_err | grep -q "locked out"; then locked=1; break; fi
  last_err | grep -q "wrong user or PIN" || fail "wrong PIN $i: $(last_err)"
done
[ $locked = 1 ] && [ $wrong = 4 ] || fail "the TPM did not lock out after 3 wrong PINs ($wrong tried, locked=$locked)"
tpm2_getcap properties-variable >"$E2E_TMP/cap" 2>&1 || fail "tpm2_getcap failed"
grep -q "inLockout: *1" "$E2E_TMP/cap" || fail "the TPM does not report its lockout: $(grep -i lockout "$E2E_TMP/cap" | tr -s " " | tr "\n" ";")"
expect_exit 4 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew lookup $NHS
last_err | grep -q "locked out" || fail "the right PIN during the lockout: $(last_err)"
one_line
expect_exit 3 env CMC_PIN=$NURSE "$AGENT" --dir "$DEV" --user nurse lookup $NHS
pass "3 wrong PINs lock the TPM out; the right PIN is then refused; the software slot still unlocks"

tpm2_dictionarylockout --clear-lockout >/dev/null 2>&1 || fail "could not clear the lockout"
expect_exit 3 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew lookup $NHS
last_err | grep -q "wrong PIN attempts since your last unlock" || fail "the user was not told: $(last_err)"
pass "once the lockout is cleared the right PIN unlocks again and the user is told of the wrong PINs"

# 4. A cleared TPM has a new owner seed: the slot sealed under the old one is gone.
tpm2_clear -c lockout >/dev/null 2>&1 || fail "tpm2_clear failed"
expect_exit 4 env CMC_PIN=$RIGHT "$AGENT" --dir "$DEV" --user crew lookup $NHS
last_err | grep -q "this TPM was cleared" || fail "after tpm2_clear: $(last_err)"
one_line
expect_exit 3 env CMC_PIN=$NURSE "$AGENT" --dir "$DEV" --user nurse lookup $NHS
pass "after the TPM is cleared the TPM-bound slot is refused; the software slot still unlocks"
