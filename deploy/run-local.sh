#!/bin/sh
# run-local.sh [BINDIR] - what `make run` calls: kiln-server on :8080 with its
# data in ./var, plus one local worker pool sized to the machine
# (mpirun -np <cores> kiln-worker --connect ...). Prints the URL; Ctrl-C
# stops the pool gracefully (SIGUSR1 to mpirun: a running job checkpoints at its
# next step), then the server, and waits for both. Both run in their own sessions,
# so that the terminal's Ctrl-C reaches this script only and the order holds.
# Environment: KILN_PORT (8080), KILN_BROKER (tcp://127.0.0.1:5555),
# KILN_DATA (./var), KILN_RANKS (the number of cores).
set -u
bindir=$(cd "${1:-build/release/bin}" && pwd) || exit 1
port=${KILN_PORT:-8080}
broker=${KILN_BROKER:-tcp://127.0.0.1:5555}
data=${KILN_DATA:-./var}
ranks=${KILN_RANKS:-$(nproc 2>/dev/null || echo 1)}
[ "$ranks" -ge 1 ] 2>/dev/null || ranks=1
mkdir -p "$data" || exit 1
rm -f "$data/ports"

server=""
pool=""
stop() {
    trap - INT TERM
    echo
    echo "run-local: stopping"
    [ -n "$pool" ] && kill -USR1 "$pool" 2>/dev/null && wait "$pool" 2>/dev/null
    [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null
    echo "run-local: stopped"
    exit 0
}
trap stop INT TERM

setsid "$bindir/kiln-server" --http "127.0.0.1:$port" --broker "$broker" --data-dir "$data" \
    --port-file "$data/ports" &
server=$!
i=0
while [ ! -s "$data/ports" ]; do
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server"
        echo "run-local: kiln-server did not start (is port $port or $broker in use?)" >&2
        exit 1
    fi
    i=$((i + 1))
    [ "$i" -gt 100 ] && { echo "run-local: kiln-server did not become ready in 10 s" >&2; stop; }
    sleep 0.1
done

# Open MPI refuses to run as root unless told that it is on purpose.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
setsid mpirun --oversubscribe -np "$ranks" "$bindir/kiln-worker" --connect "$broker" &
pool=$!

echo
echo "kiln is running: http://localhost:$port/"
echo "  one local pool of $ranks ranks; data in $data"
echo "  CLI: $bindir/kiln --url http://localhost:$port submit api/examples/train-resnet20-fmnist.json"
echo "  Ctrl-C stops everything."
echo

# Wait for Ctrl-C; report a pool or server that ends on its own.
while :; do
    if [ -n "$pool" ] && ! kill -0 "$pool" 2>/dev/null; then
        wait "$pool"
        echo "run-local: the local pool exited (status $?); the server keeps running" >&2
        pool=""
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server"
        echo "run-local: kiln-server exited (status $?)" >&2
        [ -n "$pool" ] && kill -USR1 "$pool" 2>/dev/null && wait "$pool" 2>/dev/null
        exit 1
    fi
    sleep 1
done
