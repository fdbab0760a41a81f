#!/bin/sh
# test_graceful_stop.sh - pools stopped by the signals that systemd, container engines and
# Kubernetes send, through deploy/kiln-pool as they run it; a real server and real pools.
#
#   1. SIGTERM to `kiln-pool launch` of a 1-rank pool mid-job (systemd's KillMode=mixed,
#      `podman stop`, a pod's termination): the pool leaves within its bound with status 0,
#      the attempt ends POOL_STOPPED, the job resumes on the other pool from the stop
#      step and succeeds with every training-metric step exactly once;
#   2. SIGUSR1 to rank 1 only of a 2-rank pool mid-job (what `kiln-pool agent` sends to
#      the ranks of its container): every rank stops at the same step, the same outcome;
#   3. SIGTERM to rank 1 only of an idle 2-rank pool: the pool leaves within 5 s.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"
KILN_POOL="$(cd "$(dirname "$0")/../../deploy" && pwd)/kiln-pool"
PATH="$KILN_BIN:$PATH"
export PATH

start_server
export KILN_SERVER="$EP" KILN_THREADS=1

# kill -9 of a launcher (service.sh's cleanup) would leave its mpirun and ranks
# behind, reconnecting for ever: end every launched pool by the mpirun pid it wrote
cleanup_hook() {
    for _f in "$TMP"/run-*/pid; do
        [ -f "$_f" ] || continue
        _mp=$(cat "$_f")
        for _k in $(pgrep -P "$_mp" 2>/dev/null) "$_mp"; do kill -9 "$_k" 2>/dev/null || :; done
    done
    for p in $POOLS; do kill -9 "$p" 2>/dev/null || :; done
    [ -z "$SERVER" ] || kill -9 "$SERVER" 2>/dev/null || :
    for p in $POOLS $SERVER; do wait "$p" 2>/dev/null || :; done
}

launch() { # ID RANKS: kiln-pool launch in the background; LAUNCH_PID
    KILN_POOL_ID=$1 KILN_RANKS=$2 KILN_RUN_DIR="$TMP/run-$1" "$KILN_POOL" launch \
        >>"$TMP/pool-$1.log" 2>&1 &
    LAUNCH_PID=$!
    POOLS="$POOLS $LAUNCH_PID"
    eval "LAUNCH_$(echo "$1" | tr - _)=$LAUNCH_PID"
}
pool_state() { # ID -> idle | busy | lost | ""
    curl -s --max-time 10 "$URL/api/v1/workers" |
        $JQ -r --arg id "$1" '.workers[] | select(.id == $id) | .state'
}
wait_idle() { # ID SECONDS
    _n=0
    until [ "$(pool_state "$1")" = idle ]; do
        _n=$((_n + 1))
        [ "$_n" -gt $(($2 * 10)) ] && die "pool $1 is not idle after $2 s"
        sleep 0.1
    done
}
wait_exit() { # PID SECONDS: sets EXIT_ST to its exit status (fails past the bound)
    _n=0
    while kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ]; do
        _n=$((_n + 1))
        [ "$_n" -gt $(($2 * 10)) ] && die "process $1 did not end within $2 s"
        sleep 0.1
    done
    EXIT_ST=0
    wait "$1" || EXIT_ST=$?
}
wait_step() { # ID STEP SECONDS
    _n=0
    while :; do
        _s=$(jq_job "$1" '.progress.step // 0')
        [ "$(jq_job "$1" .state)" = RUNNING ] && [ "$_s" -ge "$2" ] && return 0
        _n=$((_n + 1))
        [ "$_n" -gt $(($3 * 10)) ] && die "job $1 did not pass step $2 within $3 s (at $_s)"
        sleep 0.1
    done
}
# Every train/loss step once, none missing: steps % 10 == 0 and the epochs' ends.
check_steps() { # ID
    metric_rows "$1" | awk '$2 == "train/loss" { print $3 }' | sort -n >"$TMP/steps-$1"
    _total=$(jq_job "$1" .progress.total_steps)
    _spe=$((_total / $(jq_job "$1" .spec.optim.epochs)))
    awk -v t="$_total" -v e="$_spe" 'BEGIN { for (s = 1; s <= t; s++) if (s % 10 == 0 || s % e == 0) print s }' \
        >"$TMP/want-$1"
    cmp -s "$TMP/steps-$1" "$TMP/want-$1" ||
        die "job $1: the train/loss steps are not each logging step once (diff: $(diff "$TMP/want-$1" "$TMP/steps-$1" | head -4 | tr '\n' ' '))"
    check_gap_free "$1"
}
# The job ran on FROM until the stop, then on TO from the stop step.
check_resumed() { # ID FROM TO
    [ "$(jq_job "$1" '.attempts | length')" = 2 ] || die "job $1 has $(jq_job "$1" '.attempts | length') attempts"
    [ "$(jq_job "$1" '.attempts[0].reason')" = POOL_STOPPED ] ||
        die "attempt 1 of $1 ended $(jq_job "$1" '.attempts[0].reason'), not POOL_STOPPED"
    [ "$(jq_job "$1" '.attempts[0].pool_id')" = "$2" ] || die "attempt 1 of $1 was not on $2"
    [ "$(jq_job "$1" '.attempts[1].pool_id')" = "$3" ] || die "attempt 2 of $1 was not on $3"
    grep -q "job $1 attempt 2 -> pool $3 .*resuming from a checkpoint" "$TMP/server.log" ||
        die "attempt 2 of $1 did not resume from a checkpoint"
    check_steps "$1"
}

cat >"$TMP/job.json" <<EOF
{"name":"stop-me","seed":4,"model":{"arch":"resnet_cifar","depth":8,"widths":[16,32,64]},
 "data":{"dataset":"fashion-mnist","train_limit":6000,"test_limit":300},
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},"resources":{"ranks":1},
 "checkpoint":{"every_steps":1000}}
EOF

launch pool-a 1
launch pool-b 2
wait_idle pool-a 60
wait_idle pool-b 60

# ---- 1. SIGTERM to the supervisor of a 1-rank pool ------------------------------------
j1=$(submit "$TMP/job.json")
wait_step "$j1" 30 60
[ "$(jq_job "$j1" .pool_id)" = pool-a ] || die "job $j1 runs on $(jq_job "$j1" .pool_id), not pool-a"
t0=$(now)
kill -TERM "$LAUNCH_pool_a"
wait_exit "$LAUNCH_pool_a" 60
st=$EXIT_ST
secs=$(echo "$(now) $t0" | awk '{ printf "%.1f", $1 - $2 }')
[ "$st" = 0 ] || die "pool-a exited with status $st after SIGTERM"
wait_state "$j1" SUCCEEDED 120
check_resumed "$j1" pool-a pool-b
ok "SIGTERM to kiln-pool launch: pool-a left in ${secs}s with status 0; job $j1 resumed on pool-b from the stop step ($(jq_job "$j1" '.attempts[0].message' | sed 's/.*(\(cancelled at step [0-9]*\)).*/\1/')), SUCCEEDED, every metric step once"

# ---- 2. SIGUSR1 to rank 1 of the 2-rank pool --------------------------------------------
j2=$(submit "$TMP/job.json")
wait_step "$j2" 20 60
[ "$(jq_job "$j2" .pool_id)" = pool-b ] || die "job $j2 runs on $(jq_job "$j2" .pool_id), not pool-b"
launch pool-a 1
wait_idle pool-a 60
wait_step "$j2" 60 60
mp=$(cat "$TMP/run-pool-b/pid")
r1=$(rank_pid "$mp" 1) || die "no rank 1 under mpirun $mp"
t0=$(now)
kill -USR1 "$r1"
wait_exit "$LAUNCH_pool_b" 60
st=$EXIT_ST
secs=$(echo "$(now) $t0" | awk '{ printf "%.1f", $1 - $2 }')
[ "$st" = 0 ] || die "pool-b exited with status $st after SIGUSR1 to its rank 1"
wait_state "$j2" SUCCEEDED 120
check_resumed "$j2" pool-b pool-a
ok "SIGUSR1 to rank 1 alone: all of pool-b stopped at one step and left in ${secs}s with status 0; job $j2 resumed on pool-a, SUCCEEDED, every metric step once"

# ---- 3. an idle pool, SIGTERM to a rank other than 0 ------------------------------------
launch pool-b 2
wait_idle pool-b 60
mp=$(cat "$TMP/run-pool-b/pid")
r1=$(rank_pid "$mp" 1) || die "no rank 1 under mpirun $mp"
kill -TERM "$r1"
wait_exit "$LAUNCH_pool_b" 5
st=$EXIT_ST
[ "$st" = 0 ] || die "idle pool-b exited with status $st after SIGTERM to its rank 1"
ok "idle pool: SIGTERM to rank 1 ends the whole pool within 5 s, status 0"

# the pool-a launched in part 2 leaves as a service manager would stop it
kill -TERM "$LAUNCH_pool_a"
wait_exit "$LAUNCH_pool_a" 30
[ "$EXIT_ST" = 0 ] || die "pool-a exited with status $EXIT_ST after SIGTERM"
