#!/bin/sh
# Writes what compose.yaml needs and must not be committed: the peer password, a development
# CA with node and client certificates, an admin and a worker token, and .env with the
# tokens' hashes. Needs the `turnstile` command (pip install . from the repository root).
# Run once; running again replaces the certificates and tokens but keeps the peer password.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
if [ ! -s secrets/peer.secret ]; then
    python3 -c 'import secrets; print(secrets.token_hex(32))' > secrets/peer.secret
fi
turnstile certs secrets/tls --node node1 --node node2 --node node3 --host localhost --host 127.0.0.1
turnstile token new secrets/admin.token --name ops --role admin > /dev/null
turnstile token new secrets/worker.token --name fleet --role worker > /dev/null
admin=$(turnstile token hash < secrets/admin.token)
worker=$(turnstile token hash < secrets/worker.token)
echo "TURNSTILE_TOKENS=ops:admin:$admin,fleet:worker:$worker" > .env
# Compose mounts these files with their host permissions and the container runs as uid
# 10001: make them readable to it. On a shared host, chown them to 10001 and keep 0600.
chmod 0644 secrets/peer.secret secrets/tls/ca.pem secrets/tls/node?.pem secrets/tls/node?.key
echo "wrote secrets/ and .env; now: docker compose up -d --build"
