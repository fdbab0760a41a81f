#!/bin/sh
# deps.sh PACKAGE... - make sure every Debian package named is installed.
# As root: apt-get update, then apt-get install the missing ones.
# Otherwise: print the exact command to run and fail.
set -eu
missing=""
for p in "$@"; do
    # npm also comes inside other builds of nodejs (which then conflict with
    # Debian's npm package): a working npm command is enough.
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "kiln: missing Debian packages:$missing" >&2
    echo "kiln: run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "kiln: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
$cmd
