#!/usr/bin/env bash
# End to end, `make install PREFIX=/usr/local DESTDIR=...`: both programs, their man pages,
# the systemd units and the example settings file land where they should; the installed
# binaries run (version, help, a hub made and listed); the units pass `systemd-analyze
# verify` where systemd is present; `make uninstall` removes what install put there.
. "$(dirname "$0")/lib.sh"
DEST="$E2E_TMP/dest"

make -C "$ROOT" --no-print-directory BUILD="$BUILD" PREFIX=/usr/local DESTDIR="$DEST" install \
  >"$E2E_TMP/install.log" 2>&1 || { cat "$E2E_TMP/install.log" >&2; fail "make install"; }
for f in bin/cmc-hub bin/cmc-agent share/man/man1/cmc-agent.1 share/man/man8/cmc-hub.8 \
         lib/systemd/system/cmc-hub.service lib/systemd/user/cmc-agent-sync.service; do
  [ -f "$DEST/usr/local/$f" ] || fail "not installed: $f"
done
[ -f "$DEST/etc/cmc/hub.conf" ] || fail "no example settings file"
[ -x "$DEST/usr/local/bin/cmc-hub" ] || fail "cmc-hub not executable"

IHUB="$DEST/usr/local/bin/cmc-hub"
IAGENT="$DEST/usr/local/bin/cmc-agent"
expect_exit 0 "$IHUB" --version
last_out | grep -q "^cmc-hub " || fail "installed cmc-hub --version"
expect_exit 0 "$IAGENT" --version
expect_exit 0 "$IHUB" --dir "$E2E_TMP/ihub" init
expect_exit 0 "$IHUB" --dir "$E2E_TMP/ihub" --json device list
[ "$(jget length)" = 0 ] || fail "installed hub lists devices it never had"
# the example settings file parses (its dir is replaced: /var/lib is not ours here)
sed "s|^dir = .*|dir = $E2E_TMP/ihub|" "$DEST/etc/cmc/hub.conf" >"$E2E_TMP/hub.conf"
expect_exit 0 "$IHUB" --config "$E2E_TMP/hub.conf" scope list
if command -v man >/dev/null 2>&1; then
  MANWIDTH=80 man -l "$DEST/usr/local/share/man/man8/cmc-hub.8" 2>/dev/null | grep -q "SETTINGS FILE" \
    || fail "cmc-hub(8) does not render"
fi
grep -q "^ExecStart=/usr/local/bin/cmc-hub --config /etc/cmc/hub.conf serve$" \
  "$DEST/usr/local/lib/systemd/system/cmc-hub.service" || fail "unit ExecStart"
for k in ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes ReadWritePaths= Restart=on-failure \
         LimitCORE=0 User=cmc-hub; do
  grep -q "^$k" "$DEST/usr/local/lib/systemd/system/cmc-hub.service" || fail "unit lacks $k"
done
pass "make install: programs, man pages, units, settings; installed binaries run"

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart exists: point it at the DESTDIR copy
  mkdir -p "$E2E_TMP/units"
  sed "s|/usr/local/bin|$DEST/usr/local/bin|g" "$DEST/usr/local/lib/systemd/system/cmc-hub.service" \
    >"$E2E_TMP/units/cmc-hub.service"
  sed "s|/usr/local/bin|$DEST/usr/local/bin|g" "$DEST/usr/local/lib/systemd/user/cmc-agent-sync.service" \
    >"$E2E_TMP/units/cmc-agent-sync.service"
  systemd-analyze verify --man=no "$E2E_TMP/units/cmc-hub.service" >"$E2E_TMP/verify.out" 2>&1 \
    || { cat "$E2E_TMP/verify.out" >&2; fail "systemd-analyze verify cmc-hub.service"; }
  systemd-analyze verify --man=no "$E2E_TMP/units/cmc-agent-sync.service" >>"$E2E_TMP/verify.out" 2>&1 \
    || { cat "$E2E_TMP/verify.out" >&2; fail "systemd-analyze verify cmc-agent-sync.service"; }
  pass "systemd-analyze verify: both units"
else
  echo "skip: systemd-analyze not installed (units not verified)"
fi

make -C "$ROOT" --no-print-directory BUILD="$BUILD" PREFIX=/usr/local DESTDIR="$DEST" uninstall \
  >>"$E2E_TMP/install.log" 2>&1 || fail "make uninstall"
[ -z "$(find "$DEST/usr/local" -type f)" ] || fail "left behind: $(find "$DEST/usr/local" -type f | head -n 3)"
[ -f "$DEST/etc/cmc/hub.conf" ] || fail "uninstall removed the settings file"
pass "make uninstall removes what install put there, keeps the settings"
