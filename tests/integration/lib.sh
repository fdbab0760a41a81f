# lib.sh - shared helpers of the integration tests (sourced, POSIX sh).
# KILN_BIN is the folder of the built programs (set by run.sh).

: "${KILN_BIN:?KILN_BIN must point at the built programs}"
WORKER="$KILN_BIN/kiln-worker"
ST_DIFF="$KILN_BIN/st_diff"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

ok() {
    echo "ok: $*"
}

# A fresh temporary folder, removed on exit (after the caller's own trap body).
new_tmp() {
    TMP=$(mktemp -d /tmp/kiln-it-XXXXXX)
    trap 'cleanup_hook || :; [ -n "${KILN_KEEP_TMP:-}" ] || rm -rf "$TMP" || :' EXIT
}
cleanup_hook() { :; }

# mpirun as the tests need it: root allowed, more ranks than cores allowed.
kiln_mpirun() {
    mpirun --allow-run-as-root --oversubscribe --mca btl self,tcp "$@"
}

# Seconds since the epoch with a fraction.
now() {
    date +%s.%N
}
