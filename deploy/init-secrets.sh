#!/bin/sh
# init-secrets.sh [--force] [DIR] - the first run's tokens for deploy/compose.yaml: a token with
# scope admin for you and one with scope pool for the pools, made by `kiln-server
# new-token` (from PATH, else from the kiln image through podman or docker). Writes, in
# DIR (default: deploy/, beside compose.yaml)
#   secrets/tokens              the tokens file: one "NAME SCOPES sha256:HASH" line each;
#                               hashes only, so it may be world-readable (the server runs
#                               as uid 10001 and the compose secret is a bind mount)
#   secrets/admin.token         your token (mode 600), also printed on stdout
#   .env                        KILN_POOL_TOKEN=<the pool token> (mode 600), read by compose
#   secrets/pool.env            the same line, for Kubernetes (deploy/k8s's secretGenerator:
#                               `deploy/init-secrets.sh deploy/k8s`, then kubectl apply -k)
#   secrets/pool-ssh/           the pools' SSH key pair (id_ed25519, .pub, authorized_keys),
#                               for Kubernetes' StatefulSet pools (compose pools make their own)
# and refuses to replace existing ones without --force (the old tokens would stop working).
# Environment: KILN_IMAGE (kiln:latest), ENGINE (podman, else docker).
set -eu
force=""
[ "${1:-}" = --force ] && { force=1; shift; }
here=$(cd "${1:-$(dirname "$0")}" && pwd)
secrets=$here/secrets
image=${KILN_IMAGE:-kiln:latest}
if [ -z "$force" ] && [ -s "$secrets/tokens" ]; then
    echo "init-secrets: $secrets/tokens exists; --force makes new tokens (the old ones stop working)" >&2
    exit 1
fi

new_token() { # NAME SCOPES -> two lines: the token, the tokens-file line
    if command -v kiln-server >/dev/null 2>&1; then
        kiln-server new-token "$1" "$2"
        return
    fi
    engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
    "$engine" run --rm --entrypoint kiln-server "$image" new-token "$1" "$2"
}

# The pools' SSH key pair (Kubernetes' kiln-pool-ssh; compose pools make their own):
# private key, a line "--", public key.
new_key_pair() {
    script='ssh-keygen -q -t ed25519 -N "" -C kiln-pool -f "$0/k" >/dev/null && cat "$0/k" && echo -- && cat "$0/k.pub"'
    if command -v ssh-keygen >/dev/null 2>&1; then
        d=$(mktemp -d) && sh -c "$script" "$d"; st=$?
        rm -rf "$d"
        return $st
    fi
    engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
    "$engine" run --rm --network none --entrypoint sh "$image" -c "$script" /tmp
}

umask 077
mkdir -p "$secrets"
admin=$(new_token admin admin) || { echo "init-secrets: kiln-server new-token failed (is the image $image built?)" >&2; exit 1; }
pool=$(new_token pools pool) || exit 1
{
    echo "# kiln tokens: NAME SCOPES sha256:HASH (made by deploy/init-secrets.sh)"
    echo "$admin" | sed -n 2p
    echo "$pool" | sed -n 2p
} >"$secrets/tokens.tmp"
chmod 644 "$secrets/tokens.tmp"
mv "$secrets/tokens.tmp" "$secrets/tokens"
echo "$admin" | sed -n 1p >"$secrets/admin.token"
echo "KILN_POOL_TOKEN=$(echo "$pool" | sed -n 1p)" >"$here/.env"
cp "$here/.env" "$secrets/pool.env"
pair=$(new_key_pair) || { echo "init-secrets: ssh-keygen failed" >&2; exit 1; }
mkdir -p "$secrets/pool-ssh"
echo "$pair" | sed '/^--$/,$d' >"$secrets/pool-ssh/id_ed25519"
echo "$pair" | sed '1,/^--$/d' >"$secrets/pool-ssh/id_ed25519.pub"
cp "$secrets/pool-ssh/id_ed25519.pub" "$secrets/pool-ssh/authorized_keys"
chmod 755 "$secrets"
chmod 600 "$secrets/admin.token" "$secrets/pool.env" "$here/.env"
echo "init-secrets: wrote $secrets/ (tokens, admin.token, pool.env, pool-ssh/) and $here/.env" >&2
echo "init-secrets: your admin token (also for the dashboard's login):" >&2
sed -n 1p "$secrets/admin.token"
