#!/usr/bin/env bash
# bench/certs.sh DIR CN: a throwaway CA (subject CN) and a server certificate for 127.0.0.1 in
# DIR (ca.pem, server.pem, server.key), valid for two days, for a hub served over HTTPS on
# loopback. Private keys are left mode 600. Exit status non-zero when openssl fails.
set -euo pipefail
d=$1
mkdir -p "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=$2" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
  >"$d/ext.cnf"
openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
  -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
chmod 600 "$d"/*.key
