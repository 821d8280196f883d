#!/usr/bin/env bash
# Makes the certificates of tpserve's internal mutual TLS (gateway <-> router
# <-> workers) for the internal-tls kustomize component: a private CA and one
# service certificate that every component presents and accepts, then prints
# the `kubectl create secret` command that stores them.
#
# The certificate's subject alternative names are the names components dial:
# the replicas' headless-Service names (short, namespaced and cluster FQDN,
# wildcard over the pods), 127.0.0.1 and localhost (router -> workers inside
# a pod), and the fixed name `tpserve-internal` that the component passes as
# --internal-ssl-target-name (so one certificate serves every pod).
#
# Usage: deploy/make_internal_certs.sh OUT_DIR [NAMESPACE] [DAYS]
#   NAMESPACE  the overlay's namespace (default tpserve)
#   DAYS       validity of the service certificate (default 365; CA: 10 years)
# Writes OUT_DIR/ca.crt, ca.key, tls.crt, tls.key (keys mode 600). Keep
# ca.key offline: it is needed only to issue the next certificate.
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR [NAMESPACE] [DAYS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage
out=$1
ns=${2:-tpserve}
days=${3:-365}
service=tpserve-replica
secret=tpserve-internal-tls
[[ $ns =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "error: '$ns' is not a namespace name" >&2; exit 2; }
[[ $days =~ ^[1-9][0-9]*$ ]] || { echo "error: DAYS must be a positive number, got '$days'" >&2; exit 2; }
command -v openssl >/dev/null || { echo "error: openssl is not installed" >&2; exit 1; }
if [[ -e $out/ca.key || -e $out/tls.key ]]; then
  echo "error: $out already holds keys; remove them or choose another folder" >&2
  exit 1
fi
mkdir -p "$out"
umask 077

san="DNS:tpserve-internal,DNS:*.$service,DNS:*.$service.$ns,DNS:*.$service.$ns.svc"
san+=",DNS:*.$service.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1"

openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 \
  -keyout "$out/ca.key" -out "$out/ca.crt" -subj "/CN=tpserve internal CA ($ns)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey rsa:3072 -nodes -sha256 -keyout "$out/tls.key" -out "$out/tls.csr" \
  -subj "/CN=tpserve-internal" 2>/dev/null
# Both usages: every component is a TLS server to its callers and a client
# of the next hop.
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days "$days" -sha256 -out "$out/tls.crt" -extfile <(printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=$san") 2>/dev/null
rm -f "$out/tls.csr" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/tls.crt"
openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null

echo "wrote $out/ca.crt, $out/tls.crt, $out/tls.key (and $out/ca.key: keep it offline)"
echo "subject alternative names: $san"
echo "store them in the cluster with:"
echo "  kubectl -n $ns create secret generic $secret --from-file=ca.crt=$out/ca.crt --from-file=tls.crt=$out/tls.crt --from-file=tls.key=$out/tls.key"
