#!/bin/sh
# test_faults.sh - kiln-server with REAL pools (mpirun -np 2 kiln-worker) under faults.
#
# A small deterministic train job (synthetic data, a tiny ResNet, a
# checkpoint every 40 steps) runs once uninterrupted as the reference. Then:
#  1. kill -9 of the mpirun of the pool running a job: within 10 s the job
#     goes RESTARTING with reason WORKER_LOST; it resumes from its latest
#     checkpoint on the other, free pool and succeeds; its test accuracy and
#     loss match the reference (the band: |top1 diff| <= 0.02, |loss diff| <=
#     1e-3 relative; resume is exact, so they are equal in practice); its
#     metric points are the reference's, each step once (the points attempt 1
#     logged after the checkpoint are dropped: the retry logs them again);
#     /metrics counts the lost attempt.
#  2. kill -9 of one rank (rank 1), twice, of a job with retry.max_restarts=1:
#     RESTARTING/WORKER_LOST, then FAILED with BACKOFF_LIMIT_EXCEEDED.
#  3. kill -9 of the server mid-job, restarted on the same ports: every
#     accepted job is still there in a truthful state (a queued one QUEUED),
#     the pool reconnects and the job goes on; its metrics are exactly the
#     reference's (name, step, value), none lost, none twice; an
#     Idempotency-Key given before the crash still names the same job.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

spec() { # NAME MAX_RESTARTS
    cat <<EOF
{"name":"$1","seed":3,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
          "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]},
 "data":{"dataset":"synthetic","synthetic":{"train":2048,"test":256}},
 "optim":{"batch_size":32,"epochs":8},
 "checkpoint":{"every_steps":40,"keep_last":2},
 "retry":{"max_restarts":$2},
 "resources":{"ranks":2}}
EOF
}

# Waits until job $1 has a checkpoint on the server and is at most half done.
wait_checkpoint() { # ID SECONDS
    i=0
    while :; do
        if ls "$TMP/data/jobs/$1/checkpoints/"*.safetensors >/dev/null 2>&1; then
            frac=$(jq_job "$1" .progress.fraction)
            awk -v f="$frac" 'BEGIN { exit !(f < 0.5) }' ||
                die "job $1 is already $frac done; the test job is too short for this machine"
            return 0
        fi
        i=$((i + 1))
        [ "$i" -gt $(($2 * 20)) ] && die "job $1 wrote no checkpoint in $2 s"
        sleep 0.05
    done
}

start_server
start_pool pool-a 2

# ---- the reference: uninterrupted --------------------------------------------
spec ref 2 >"$TMP/ref.json"
t0=$(now)
ref=$(submit "$TMP/ref.json")
[ -n "$ref" ] && [ "$ref" != null ] || die "submit failed"
wait_state "$ref" SUCCEEDED 120
ref_secs=$(echo "$(now) $t0" | awk '{printf "%.1f", $1 - $2}')
check_gap_free "$ref"
ref_top1=$(jq_job "$ref" .result.test_top1)
ref_loss=$(jq_job "$ref" .result.test_loss)
cut -d' ' -f2- "$TMP/rows-$ref" | sort >"$TMP/ref.points"
ok "reference: SUCCEEDED in ${ref_secs}s, test top1 $ref_top1, loss $ref_loss, $(wc -l <"$TMP/ref.points") metric points"

in_band() { # TOP1 LOSS
    awk -v a="$1" -v b="$ref_top1" -v l="$2" -v m="$ref_loss" 'BEGIN {
        d = a - b; if (d < 0) d = -d
        e = l - m; if (e < 0) e = -e
        exit !(d <= 0.02 && e <= 1e-3 * (m < 0 ? -m : m) + 1e-6) }'
}

# ---- 1. the pool dies: kill -9 of mpirun ------------------------------------------
start_pool pool-b 2
spec resumed 2 >"$TMP/j1.json"
j1=$(submit "$TMP/j1.json")
wait_state "$j1" RUNNING 30
wait_checkpoint "$j1" 60
victim_pool=$(jq_job "$j1" .pool_id)
case "$victim_pool" in
pool-a) other=pool-b ;;
pool-b) other=pool-a ;;
*) die "job $j1 runs on '$victim_pool'" ;;
esac
victim=$(pool_pid "$victim_pool")
ck_step=$(ls "$TMP/data/jobs/$j1/checkpoints/" | sed -n 's/.*-step-\([0-9]*\)\.safetensors/\1/p' |
    sort -n | tail -1)
t_kill=$(now)
kill9_pool "$victim"
# the RESTARTING event: reason WORKER_LOST, within 10 s of the kill
i=0
while :; do
    ev=$(jq_job "$j1" '[.events[] | select(.to == "RESTARTING")][0]')
    [ "$ev" != null ] && break
    i=$((i + 1))
    [ "$i" -gt 150 ] && die "job $j1 did not go RESTARTING within 15 s of the kill"
    sleep 0.1
done
reason=$(echo "$ev" | $JQ -r .reason)
[ "$reason" = WORKER_LOST ] || die "RESTARTING with reason $reason, expected WORKER_LOST"
t_ev=$(iso_epoch "$(echo "$ev" | $JQ -r .time)")
lost_after=$(echo "$t_ev $t_kill" | awk '{printf "%.1f", $1 - $2}')
awk -v s="$lost_after" 'BEGIN { exit !(s <= 10) }' || die "WORKER_LOST came ${lost_after}s after the kill"
wait_state "$j1" SUCCEEDED 120
attempts=$(jq_job "$j1" '.attempts | length')
[ "$attempts" -eq 2 ] || die "job $j1 has $attempts attempts, expected 2"
[ "$(jq_job "$j1" '.attempts[0].reason')" = WORKER_LOST ] || die "attempt 1 did not end WORKER_LOST"
[ "$(jq_job "$j1" '.attempts[1].pool_id')" = "$other" ] || die "attempt 2 did not run on $other"
grep -q "job $j1 attempt 2 -> pool $other (2 ranks), resuming from a checkpoint" "$TMP/server.log" ||
    die "attempt 2 did not resume from a checkpoint"
top1=$(jq_job "$j1" .result.test_top1)
loss=$(jq_job "$j1" .result.test_loss)
in_band "$top1" "$loss" || die "resumed: top1 $top1 loss $loss; uninterrupted: $ref_top1 $ref_loss"
check_gap_free "$j1"
# the retry dropped what attempt 1 logged after the checkpoint and logged it again:
# each (name, step) once, and (resume is exact) the reference's values but throughput
cut -d' ' -f2- "$TMP/rows-$j1" | sort >"$TMP/j1.points"
cut -d' ' -f1,2 "$TMP/ref.points" >"$TMP/ref.keys"
cut -d' ' -f1,2 "$TMP/j1.points" >"$TMP/j1.keys"
bad=$(diff "$TMP/ref.points" "$TMP/j1.points" | grep '^[<>] ' | grep -v '^[<>] throughput ' | head -12)
if ! cmp -s "$TMP/ref.keys" "$TMP/j1.keys" || [ -n "$bad" ]; then
    echo "$bad" >&2
    die "job $j1: its metric points are not the reference's, each step once"
fi
dropped=$(jq_job "$j1" .metrics_dropped)
[ "$(prom 'kiln_attempts{reason="WORKER_LOST"}')" = 1 ] || die "/metrics: kiln_attempts WORKER_LOST"
[ "$(prom 'kiln_pool_heartbeat_age_seconds{pool="'"$victim_pool"'",state="lost"}')" != "" ] ||
    die "/metrics does not show $victim_pool as lost"
ok "mpirun of $victim_pool killed at step >= $ck_step: WORKER_LOST after ${lost_after}s, resumed on $other from a checkpoint, SUCCEEDED; top1 $top1 loss $loss (uninterrupted $ref_top1 $ref_loss); the $dropped points attempt 1 logged past the checkpoint dropped, every step once, the reference's points"

# ---- 2. one rank dies, twice: the backoff limit -----------------------------------
start_pool "$victim_pool" 2
spec backoff 1 >"$TMP/j2.json"
j2=$(submit "$TMP/j2.json")
for round in 1 2; do
    wait_state "$j2" RUNNING 60
    wait_checkpoint "$j2" 60
    p=$(jq_job "$j2" .pool_id)
    case "$p" in pool-a | pool-b) ;; *) die "job $j2 runs on '$p'" ;; esac
    mp=$(pool_pid "$p")
    [ -n "$mp" ] || die "no mpirun for $p"
    r1=$(rank_pid "$mp" 1) || die "rank 1 of $p not found"
    kill -9 "$r1"
    if [ "$round" -eq 1 ]; then
        i=0
        until [ "$(jq_job "$j2" '[.events[] | select(.to == "RESTARTING" and .reason == "WORKER_LOST")] | length')" -ge 1 ]; do
            i=$((i + 1))
            [ "$i" -gt 120 ] && die "job $j2 did not go RESTARTING/WORKER_LOST after rank 1 died"
            sleep 0.1
        done
    fi
    wait "$mp" 2>/dev/null
    start_pool "$p" 2
done
wait_state "$j2" FAILED 30
[ "$(jq_job "$j2" .reason)" = BACKOFF_LIMIT_EXCEEDED ] || die "job $j2 FAILED with $(jq_job "$j2" .reason)"
[ "$(jq_job "$j2" '.attempts | length')" -eq 2 ] || die "job $j2: expected 2 attempts"
[ "$(jq_job "$j2" '[.attempts[] | select(.reason == "WORKER_LOST")] | length')" -eq 2 ] ||
    die "job $j2: both attempts should have ended WORKER_LOST"
check_gap_free "$j2"
ok "rank 1 killed twice: RESTARTING (WORKER_LOST), then FAILED with BACKOFF_LIMIT_EXCEEDED: $(jq_job "$j2" .message)"

# ---- 3. the server dies mid-job -----------------------------------------------------
spec survivor 2 >"$TMP/j3.json"
sed 's/"ranks":2/"ranks":32/; s/"survivor"/"waiting"/' "$TMP/j3.json" >"$TMP/j4.json"
j3=$(curl -s -H 'Content-Type: application/json' -H 'Idempotency-Key: faults-k1' \
    --data-binary @"$TMP/j3.json" "$URL/api/v1/jobs" | $JQ -r .id)
j4=$(submit "$TMP/j4.json")
wait_state "$j3" RUNNING 60
wait_checkpoint "$j3" 60
before=$(jq_job "$j3" .metric_count)
kill9_server
start_server "$PORT" "$EP"
[ "$(jq_job "$j4" .state)" = QUEUED ] || die "queued job $j4 is $(jq_job "$j4" .state) after the restart"
st=$(jq_job "$j3" .state)
case "$st" in RUNNING | STARTING | RESTARTING | SUCCEEDED) ;; *) die "job $j3 is $st after the restart" ;; esac
again=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' -H 'Idempotency-Key: faults-k1' \
    --data-binary @"$TMP/j3.json" "$URL/api/v1/jobs")
[ "$(echo "$again" | sed 's/ [0-9]*$//' | $JQ -r .id) ${again##* }" = "$j3 200" ] ||
    die "the Idempotency-Key did not survive the restart: $again"
wait_state "$j3" SUCCEEDED 120
check_gap_free "$j3"
after=$(jq_job "$j3" .metric_count)
attempts=$(jq_job "$j3" '.attempts | length')
if [ "$attempts" -eq 1 ]; then
    # the same attempt went on: exactly the reference's points (every name
    # and step; every value but the wall-clock throughput)
    cut -d' ' -f2- "$TMP/rows-$j3" | sort >"$TMP/j3.points"
    for f in ref j3; do
        cut -d' ' -f1,2 "$TMP/$f.points" >"$TMP/$f.keys"
        grep -v '^throughput ' "$TMP/$f.points" >"$TMP/$f.values"
    done
    if ! cmp -s "$TMP/ref.keys" "$TMP/j3.keys" || ! cmp -s "$TMP/ref.values" "$TMP/j3.values"; then
        diff "$TMP/ref.points" "$TMP/j3.points" | grep -v throughput | head -12 >&2
        die "job $j3: metrics differ from the uninterrupted run"
    fi
    how="the pool reconnected and the attempt went on; all $after metric points equal the reference's"
else
    how="re-queued from its checkpoint ($attempts attempts); metrics gap-free"
fi
top1=$(jq_job "$j3" .result.test_top1)
loss=$(jq_job "$j3" .result.test_loss)
in_band "$top1" "$loss" || die "after a server crash: top1 $top1 loss $loss; reference $ref_top1 $ref_loss"
[ "$(jq_job "$j4" .state)" = QUEUED ] || die "queued job $j4 changed state"
ok "server killed at metric $before: $how; top1 $top1; the queued job stayed QUEUED; the idempotency key held"
echo "test_faults: ok"
