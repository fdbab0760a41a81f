#!/bin/sh
# npm-deps.sh DIR... - installs each DIR's npm packages exactly as its
# package-lock.json says (npm ci, no install scripts), unless node_modules
# already holds that lock. Needs npm (make deps installs it first).
set -eu
command -v npm >/dev/null 2>&1 || {
    echo "kiln: npm is missing; run make deps as root (it installs Debian's nodejs and npm)" >&2
    exit 1
}
for d in "$@"; do
    [ -f "$d/package-lock.json" ] || { echo "kiln: $d has no package-lock.json" >&2; exit 1; }
    if [ -f "$d/node_modules/.package-lock.json" ] &&
        node -e 'const a=require(process.argv[1]).packages,b=require(process.argv[2]).packages;
                 for (const k of Object.keys(a)) if (k && (!b[k] || b[k].version !== a[k].version)) process.exit(1);
                 for (const k of Object.keys(b)) if (!a[k]) process.exit(1);' \
            "$(pwd)/$d/package-lock.json" "$(pwd)/$d/node_modules/.package-lock.json" 2>/dev/null; then
        continue
    fi
    echo "kiln: npm ci in $d" >&2
    (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
done
