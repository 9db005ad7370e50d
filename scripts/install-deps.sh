#!/usr/bin/env bash
# Installs every build and test dependency on Debian 12 (bookworm).
# Does nothing when everything is already present, so `make check` can call it every time.
# SQLCipher comes from bookworm-backports (4.6.1): bookworm main's 3.4.1 is built on
# SQLite 3.15.2 and carries known CVEs.
set -euo pipefail

need_sqlcipher_version=4.6.1
apt_packages=(
  build-essential pkg-config
  libsodium-dev libmsgpack-dev libcurl4-openssl-dev zlib1g-dev
  libmicrohttpd-dev libgnutls28-dev libjansson-dev libcmocka-dev
  openssl libssl-dev valgrind curl jq
  stunnel4 faketime fiu-utils libfiu-dev clang libclang-rt-14-dev llvm
  chromium nodejs
  scdoc
  tmux
  libbrotli-dev
  postgresql-15 libpq-dev
)
# the crew's page tests (tests/web) drive Chromium from node; NodeSource's nodejs carries its
# own npm and conflicts with Debian's npm package, so npm is added only when it is missing
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# key slots sealed to a TPM 2.0 (crypto/tpm.c: tpm2-tss's ESYS API); the tests run swtpm and
# set its lockout with tpm2-tools (tests/e2e/test_attack_tpm.sh)
apt_packages+=(libtss2-dev swtpm swtpm-tools tpm2-tools)

have_all() {
  local pc
  for pc in libsodium msgpack libcurl zlib libmicrohttpd gnutls jansson cmocka sqlcipher libcrypto; do
    pkg-config --exists "$pc" 2>/dev/null || return 1
  done
  command -v openssl >/dev/null || return 1
  command -v valgrind >/dev/null || return 1
  command -v curl >/dev/null || return 1
  command -v jq >/dev/null || return 1
  command -v scdoc >/dev/null || return 1
  # the terminal card test runs lookup in a real terminal (tests/e2e/test_card_terminal.sh)
  command -v tmux >/dev/null || return 1
  command -v chromium >/dev/null || return 1
  command -v node >/dev/null || return 1
  command -v npm >/dev/null || return 1
  # fault and fuzz tests (docs/TESTING.md)
  local tool
  for tool in stunnel4 faketime fiu-run clang llvm-profdata sqlcipher; do
    command -v "$tool" >/dev/null || return 1
  done
  dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || return 1
  # libcurl must be the OpenSSL flavour (libcurl4-openssl-dev).
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || return 1
  dpkg -s libmsgpack-dev >/dev/null 2>&1 || return 1
  # Brotli bundle bodies (sync/zbody.c)
  pkg-config --exists libbrotlienc libbrotlidec 2>/dev/null || return 1
  # the hub's PostgreSQL store: libpq to build, a server for the tests (tests/support/pg_run.sh)
  pkg-config --exists libpq 2>/dev/null || return 1
  [ -x /usr/lib/postgresql/15/bin/initdb ] || return 1
  # TPM-bound key slots: tpm2-tss to build, swtpm and tpm2-tools for the tests
  pkg-config --exists tss2-esys tss2-tctildr tss2-mu 2>/dev/null || return 1
  command -v swtpm >/dev/null || return 1
  command -v tpm2_dictionarylockout >/dev/null || return 1
  [ "$(dpkg-query -W -f='${Version}' libsqlcipher-dev 2>/dev/null | cut -d- -f1)" = "$need_sqlcipher_version" ] || return 1
  return 0
}

if have_all; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing build dependencies and not root; run: sudo $0" >&2
  exit 1
fi

backports=/etc/apt/sources.list.d/bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > "$backports" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing build dependencies (apt)" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
  libsqlcipher-dev libsqlcipher1 sqlcipher >/dev/null

if ! have_all; then
  echo "install-deps: dependencies still missing after install" >&2
  exit 1
fi
echo "install-deps: done" >&2
