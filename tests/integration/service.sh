# service.sh - helpers for the tests that run kiln-server with real pools
# (sourced after lib.sh; POSIX sh + curl + jq). Servers bind 127.0.0.1 on
# free ports; every wait is bounded. The helpers' own variables start with
# an underscore (sh has no locals): callers keep i, k, n, ... to themselves.
#
#   start_server [HTTP_PORT BROKER_ENDPOINT [extra server flags...]]
#                               starts kiln-server on $TMP/data; sets SERVER,
#                               PORT, EP, URL; restarting on the same ports
#                               keeps the pools' endpoint
#   kill9_server                kill -9 and reap it
#   start_pool ID RANKS         mpirun -np RANKS kiln-worker --connect $EP;
#                               sets POOL_PID (mpirun's pid); appends to POOLS
#   pool_pid ID                 the mpirun pid of the newest pool with that id
#   kill9_pool PID              kill -9 of an mpirun and wait for its ranks
#   rank_pid MPIRUN_PID RANK    the pid of one rank of that pool
#   make_tokens                 kiln-server new-token "ci" (submit,read) and "gpu" (pool):
#                               their hashes in $TMP/tokens (for --tokens), the tokens in
#                               $TMP/ci.token and $TMP/gpu.token; sets CI_TOKEN, GPU_TOKEN
#   submit FILE                 POST the job spec FILE; prints the job's id
#   run_job FILE SECONDS        submits FILE (sets JOB), waits until it SUCCEEDED and
#                               checks its metrics are gap-free
#   has_artifacts ID NAME...    fails unless the job lists every artifact NAME
#   job ID                      GET /api/v1/jobs/ID (JSON)
#   jq_job ID FILTER            a jq filter over it (raw output)
#   wait_state ID STATE SECONDS until the job is in STATE (fails otherwise)
#   wait_terminal ID SECONDS    until the job is SUCCEEDED, FAILED or CANCELLED
#   metric_rows ID              every metric point, "seq name step value attempt-free",
#                               read through after_seq pages of 500
#   check_gap_free ID           metric seqs rise, each once, and account for all of
#                               1..metric_count: the points kept plus the metrics_dropped
#                               a retry superseded (none for a job of one attempt)
#   prom NAME_WITH_LABELS       the value of one /metrics sample (empty if absent)
#
# SRV and CLI are the kiln-server and kiln programs under test.

SRV="$KILN_BIN/kiln-server"
CLI="$KILN_BIN/kiln"
SERVER=""
POOLS=""
JQ="jq"
command -v jq >/dev/null || fail "jq is needed (make deps installs it)"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

cleanup_hook() {
    # every step may fail (already gone, killed status): under set -e a
    # failing trap command would replace the test's own exit status
    for p in $POOLS; do kill -9 "$p" 2>/dev/null || :; done
    [ -z "$SERVER" ] || kill -9 "$SERVER" 2>/dev/null || :
    for p in $POOLS $SERVER; do wait "$p" 2>/dev/null || :; done
}

# Prints the tails of the logs, then fails.
die() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/server.log "$TMP"/pool-*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }
    done
    exit 1
}

start_server() {
    hp=${1:-0}
    be=${2:-tcp://127.0.0.1:*}
    [ $# -ge 2 ] && shift 2
    rm -f "$TMP/ports"
    "$SRV" --http "127.0.0.1:$hp" --broker "$be" --data-dir "$TMP/data" \
        --port-file "$TMP/ports" "$@" >>"$TMP/server.log" 2>&1 &
    SERVER=$!
    _n=0
    while [ ! -s "$TMP/ports" ]; do
        _n=$((_n + 1))
        [ "$_n" -gt 200 ] && die "kiln-server did not start"
        kill -0 "$SERVER" 2>/dev/null || die "kiln-server exited at start"
        sleep 0.05
    done
    PORT=$(cut -d' ' -f1 "$TMP/ports")
    EP=$(cut -d' ' -f2 "$TMP/ports")
    URL="http://127.0.0.1:$PORT"
}

kill9_server() {
    kill -9 "$SERVER" 2>/dev/null
    wait "$SERVER" 2>/dev/null
    SERVER=""
}

start_pool() { # ID RANKS
    OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np "$2" \
        "$KILN_BIN/kiln-worker" --connect "$EP" --pool-id "$1" --work-dir "$TMP/work-$1" \
        >>"$TMP/pool-$1.log" 2>&1 &
    POOL_PID=$!
    POOLS="$POOLS $POOL_PID"
    echo "$1 $POOL_PID" >>"$TMP/pools.map"
}

pool_pid() { # ID: the mpirun pid of the newest pool started with that id
    awk -v id="$1" '$1 == id { p = $2 } END { print p }' "$TMP/pools.map"
}

kill9_pool() { # MPIRUN_PID: kill -9, then wait until its ranks are gone (bounded)
    _kids=$(pgrep -P "$1" 2>/dev/null)
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    _n=0
    for _kid in $_kids; do
        while kill -0 "$_kid" 2>/dev/null; do
            _n=$((_n + 1))
            [ "$_n" -gt 200 ] && { kill -9 "$_kid" 2>/dev/null; break; }
            sleep 0.05
        done
    done
}

rank_pid() { # MPIRUN_PID RANK
    for p in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

job() {
    curl -s --max-time 10 "$URL/api/v1/jobs/$1"
}

jq_job() {
    job "$1" | $JQ -r "$2"
}

submit() { # FILE -> prints the id
    curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary @"$1" \
        "$URL/api/v1/jobs" | $JQ -r .id
}

run_job() { # FILE SECONDS
    JOB=$(submit "$1")
    [ -n "$JOB" ] && [ "$JOB" != null ] || die "submit of $1: no job id"
    wait_state "$JOB" SUCCEEDED "$2"
    check_gap_free "$JOB"
}

has_artifacts() { # ID NAME...
    _id=$1
    shift
    curl -sf --max-time 10 "$URL/api/v1/jobs/$_id/artifacts" >"$TMP/arts-$_id.json" ||
        die "job $_id: no artifact list"
    for _f in "$@"; do
        $JQ -e --arg f "$_f" '.. | strings | select(. == $f)' "$TMP/arts-$_id.json" >/dev/null ||
            die "job $_id: artifact $_f missing from the server: $(cat "$TMP/arts-$_id.json")"
    done
}

make_tokens() {
    "$SRV" new-token ci submit,read >"$TMP/new-ci" || die "new-token ci"
    "$SRV" new-token gpu pool >"$TMP/new-gpu" || die "new-token gpu"
    sed -n 2p "$TMP/new-ci" >"$TMP/tokens"
    sed -n 2p "$TMP/new-gpu" >>"$TMP/tokens"
    CI_TOKEN=$(sed -n 1p "$TMP/new-ci")
    GPU_TOKEN=$(sed -n 1p "$TMP/new-gpu")
    echo "$CI_TOKEN" >"$TMP/ci.token"
    echo "$GPU_TOKEN" >"$TMP/gpu.token"
    chmod 600 "$TMP/ci.token" "$TMP/gpu.token"
}

wait_state() { # ID STATE SECONDS
    _n=0
    while :; do
        _st=$(jq_job "$1" .state 2>/dev/null)
        [ "$_st" = "$2" ] && return 0
        _n=$((_n + 1))
        [ "$_n" -gt $(($3 * 10)) ] && die "job $1 is $_st after $3 s, expected $2"
        sleep 0.1
    done
}

wait_terminal() { # ID SECONDS
    _n=0
    while :; do
        _st=$(jq_job "$1" .state 2>/dev/null)
        case "$_st" in SUCCEEDED | FAILED | CANCELLED) return 0 ;; esac
        _n=$((_n + 1))
        [ "$_n" -gt $(($2 * 10)) ] && die "job $1 is still $_st after $2 s"
        sleep 0.1
    done
}

metric_rows() { # ID: "seq name step value", every point once, by seq
    _after=0
    while :; do
        _page=$(curl -s --max-time 10 "$URL/api/v1/jobs/$1/metrics?after_seq=$_after&limit=500")
        _n=$(echo "$_page" | $JQ '.points | length')
        [ "$_n" -gt 0 ] || break
        echo "$_page" | $JQ -r '.points[] | "\(.seq) \(.name) \(.step) \(.value)"'
        _after=$(echo "$_page" | $JQ .next_seq)
    done
}

check_gap_free() { # ID
    metric_rows "$1" >"$TMP/rows-$1"
    _count=$(jq_job "$1" .metric_count)
    _dropped=$(jq_job "$1" .metrics_dropped)
    [ "$(jq_job "$1" '.attempts | length')" -gt 1 ] || [ "$_dropped" -eq 0 ] ||
        die "job $1 ran in one attempt but dropped $_dropped metric points"
    awk -v want="$_count" -v dropped="$_dropped" '
        $1 <= last || $1 > want { print "seq " $1 " after seq " last; bad = 1; exit }
        { last = $1 }
        END { if (!bad && NR + dropped != want) {
                  print NR " rows and " dropped " dropped, metric_count " want; bad = 1 }
              exit bad }' "$TMP/rows-$1" || die "job $1: metric seqs are not 1..n"
    [ "$_count" -gt 0 ] || die "job $1 has no metrics"
}

prom() { # SAMPLE (name{labels} exactly as exposed)
    curl -s --max-time 10 "$URL/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $NF }'
}

# Seconds (fractional) between an RFC 3339 UTC time and now-style epoch seconds.
iso_epoch() {
    date -u -d "$(echo "$1" | sed 's/T/ /; s/Z$//')" +%s.%N
}
