#!/bin/sh
# run.sh BINDIR SHOTDIR - the dashboard's browser tests (tests/browser/dashboard.test.mjs).
#
# Starts two kiln-servers on 127.0.0.1, free ports:
#   A: no tokens, a REAL pool (mpirun -np 1 kiln-worker --connect), which runs
#      the small train, prune (DMCP) and adapt (DNA) jobs the tests submit;
#   B: --tokens (admin, read-only and pool tokens), a kiln-testpool
#      --echo-name (a test double that logs each job's name and emits a
#      metric named by it; a checkpoint every 50 steps; the first attempt of
#      a job named "retried" fails at step 300), for the token prompt, scope
#      errors, the hostile-name checks and a retried job's chart.
# Then node's test runner drives Debian's chromium (playwright-core from
# tests/browser/node_modules, installed by `make deps`) against them;
# screenshots go to SHOTDIR. Every wait is bounded; the whole run is
# capped at 170 s. Missing chromium, node or the npm packages fail the
# run (make deps installs them), never skip it.
set -u
bindir=$(cd "$1" && pwd)
shots=$2
here=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/kiln-browser-XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || :; done
    for p in $PIDS; do wait "$p" 2>/dev/null || :; done
    rm -rf "$TMP"
}
trap cleanup EXIT
die() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }
    done
    exit 1
}
command -v node >/dev/null || die "node is missing (make deps installs nodejs)"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing (make deps installs chromium)"
[ -d "$here/node_modules/playwright-core" ] || die "playwright-core is missing (make deps runs npm ci in tests/browser)"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# start_server NAME [flags...]: sets URL_<NAME> and EP_<NAME>
start_server() {
    name=$1
    shift
    "$bindir/kiln-server" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' \
        --data-dir "$TMP/data-$name" --port-file "$TMP/ports-$name" --heartbeat-ms 200 "$@" \
        >"$TMP/server-$name.log" 2>&1 &
    PIDS="$PIDS $!"
    n=0
    while [ ! -s "$TMP/ports-$name" ]; do
        n=$((n + 1))
        [ "$n" -gt 200 ] && die "kiln-server $name did not start"
        sleep 0.05
    done
    eval "URL_$name=http://127.0.0.1:\$(cut -d' ' -f1 \"\$TMP/ports-$name\")"
    eval "EP_$name=\$(cut -d' ' -f2 \"\$TMP/ports-$name\")"
}

start_server A
OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np 1 "$bindir/kiln-worker" \
    --connect "$EP_A" --pool-id real-pool --work-dir "$TMP/work" >"$TMP/pool-A.log" 2>&1 &
PIDS="$PIDS $!"

: >"$TMP/tokens"
for t in admin:admin viewer:read pool:pool; do
    "$bindir/kiln-server" new-token "${t%%:*}" "${t#*:}" >"$TMP/tok-${t%%:*}" || die "new-token $t"
    sed -n 2p "$TMP/tok-${t%%:*}" >>"$TMP/tokens"
done
start_server B --tokens "$TMP/tokens"
"$bindir/kiln-testpool" --connect "$EP_B" --pool-id test-pool --step-ms 20 --echo-name \
    --ckpt-every 50 --fail-name retried --fail-at 300 \
    --token "$(sed -n 1p "$TMP/tok-pool")" >"$TMP/pool-B.log" 2>&1 &
PIDS="$PIDS $!"

# both pools have said hello (bounded)
for s in A B; do
    eval "url=\$URL_$s"
    tok=""
    [ "$s" = B ] && tok=$(sed -n 1p "$TMP/tok-admin")
    n=0
    until curl -s --max-time 5 -H "Authorization: Bearer $tok" "$url/api/v1/workers" |
        grep -q '"state":"idle"'; do
        n=$((n + 1))
        [ "$n" -gt 300 ] && die "the pool of server $s did not connect"
        sleep 0.1
    done
done

mkdir -p "$shots"
export KILN_URL_A="$URL_A" KILN_URL_B="$URL_B" KILN_SHOTS="$(cd "$shots" && pwd)"
KILN_TOKEN_ADMIN=$(sed -n 1p "$TMP/tok-admin")
KILN_TOKEN_READ=$(sed -n 1p "$TMP/tok-viewer")
export KILN_TOKEN_ADMIN KILN_TOKEN_READ KILN_BROWSER_TMP="$TMP"
cd "$here" || die "cannot enter $here"
timeout 170 node --test --test-concurrency=1 dashboard.test.mjs || die "browser tests failed"
echo "browser: screenshots in $KILN_SHOTS"
