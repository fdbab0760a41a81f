#!/bin/bash
# engine.sh - a container engine for `make test-containers` on a fresh Debian 12 machine
# (as root): rootful podman 4.3, runc, netavark + aardvark-dns (container names resolve on a
# compose network) and podman-compose 1.0.3 from Debian's archive, then the base images the
# Dockerfile names (debian:12, debian:12-slim), made locally from this machine's own apt
# sources with mmdebstrap, because no image registry needs to be reachable.
# Machine notes: a cgroup-v1 hybrid host makes crun refuse to start containers, so runc;
# without CAP_SYS_RESOURCE the hard rlimits cannot be raised, so the default ulimits are
# pinned to the current hard limits (podman caps NPROC at 32768). Idempotent: a second run
# only checks. Takes about a minute the first time.
set -eu
[ "$(id -u)" -eq 0 ] || { echo "engine.sh: run as root (apt-get, /etc/containers)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
need=""
for c in podman runc podman-compose mmdebstrap; do
    command -v "$c" >/dev/null 2>&1 || need=yes
done
if [ -n "$need" ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends podman runc netavark aardvark-dns iptables \
        catatonit mmdebstrap podman-compose uidmap >/dev/null
fi

nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; then nofile=1048576; fi
mkdir -p /etc/containers
conf=$(cat <<CONF
# written by kiln's tests/containers/engine.sh
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
)
if [ ! -f /etc/containers/containers.conf ] || ! grep -q "kiln's tests/containers" /etc/containers/containers.conf; then
    [ -f /etc/containers/containers.conf ] && cp /etc/containers/containers.conf /etc/containers/containers.conf.orig
    printf '%s\n' "$conf" >/etc/containers/containers.conf
fi

# The base image: Debian 12 minbase from the apt sources this machine already uses, with
# their apt options (an archive snapshot needs Check-Valid-Until false), made slim the way
# Debian's -slim images are: dpkg leaves out manuals, documentation (but the copyright
# files) and translations, in this image and in every package installed on top of it.
if ! podman image exists localhost/debian:bookworm-slim; then
    src=/etc/apt/sources.list.d/debian.sources
    [ -s "$src" ] || src=/etc/apt/sources.list
    mmdebstrap --quiet --variant=minbase --include=usr-is-merged \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/linda/*' \
        --customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
        --customize-hook='printf "Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n" >"$1/etc/apt/apt.conf.d/docker-clean"' \
        bookworm - "$src" | podman import --quiet --change 'CMD ["/bin/bash"]' - \
        localhost/debian:bookworm-slim >/dev/null
fi
# The names a Dockerfile uses resolve to it without a registry.
for t in debian:bookworm debian:12 debian:12-slim debian:bookworm-slim; do
    podman image exists "docker.io/library/$t" || podman tag localhost/debian:bookworm-slim "docker.io/library/$t"
done
echo "engine: $(podman --version), $(podman-compose version 2>/dev/null | grep -i 'podman-compose' | head -1)"
