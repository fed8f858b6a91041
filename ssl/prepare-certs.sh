#!/usr/bin/env bash
# Makes a test CA, a server certificate and a client certificate for the TLS tests, in the directory given
# (default: this script's directory). Generated files are not committed (see .gitignore).
# The CA carries keyUsage (Python 3.13's strict X.509 checks need it); the server certificate names
# localhost and 127.0.0.1 as subjectAltName.
set -euo pipefail
out=${1:-$(dirname "$0")}
mkdir -p "$out"
cd "$out"
days=3650

openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days "$days" \
  -keyout ca.key -out ca.cert -subj "/CN=channels_rabbitmq_threaded test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,digitalSignature,cRLSign,keyCertSign" 2>/dev/null

make_cert() {  # name, extensions
  openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$1.key" -out "$1.csr" -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.cert -CAkey ca.key -CAcreateserial -out "$1.cert" \
    -days "$days" -sha256 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
make_cert server "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
make_cert client "extendedKeyUsage=clientAuth"
cat client.cert ca.cert > client.certchain
chmod 0644 server.key client.key
echo "made ca.cert, server.cert/key, client.cert/key/certchain in $(pwd)"
