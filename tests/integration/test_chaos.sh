#!/bin/sh
# test_chaos.sh - a bounded chaos run: real pools and the server are killed
# (kill -9) at random points while N jobs run, then everything is restarted
# and the jobs are left to finish.
#
# Every accepted job must end SUCCEEDED, or FAILED with
# BACKOFF_LIMIT_EXCEEDED after max_restarts + 1 attempts that each ended
# for a retryable reason; none may be lost. Every job's metric seqs rise
# and, with the points a retry dropped, account for 1..metric_count; each
# series has each step once (a retry drops what the lost attempt logged after
# its checkpoint and logs it again); every SUCCEEDED job has the same points
# by name and step, however often it was interrupted. The jobs share one
# spec and seed, and resume is exact, so every SUCCEEDED job reports the
# same test loss however often it was interrupted. Jobs are submitted during the chaos with an
# Idempotency-Key each, retried until the server answers (a crash between
# storing and answering must not make two jobs).
#
# KILN_CHAOS_SEED=N replays a run (the seed is printed first);
# KILN_CHAOS_SECONDS (default 40) is the length of the chaos phase,
# KILN_CHAOS_JOBS (default 6) the number of jobs.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

seed=${KILN_CHAOS_SEED:-$(date +%s)}
secs=${KILN_CHAOS_SECONDS:-40}
njobs=${KILN_CHAOS_JOBS:-6}
echo "chaos seed $seed ($secs s, $njobs jobs): replay with KILN_CHAOS_SEED=$seed"
# The decisions, drawn up front from the seed: "delay what which pause".
awk -v s="$seed" 'BEGIN { srand(s); for (i = 0; i < 200; i++)
    printf "%.2f %d %d %.2f\n", 0.5 + 2.5 * rand(), int(100 * rand()), int(2 * rand()), 0.2 + 1.3 * rand() }' \
    >"$TMP/plan"

SFLAGS="--heartbeat-ms 300"
start_server 0 'tcp://127.0.0.1:*' $SFLAGS
start_pool pool-0 1
start_pool pool-1 1
sleep 1 # the pools say hello

cat >"$TMP/job.json" <<'EOF'
{"name":"chaos","seed":5,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
          "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]},
 "data":{"dataset":"synthetic","synthetic":{"train":3072,"test":256}},
 "optim":{"batch_size":32,"epochs":6},
 "checkpoint":{"every_steps":24,"keep_last":2},
 "retry":{"max_restarts":4},
 "resources":{"ranks":1}}
EOF
max_restarts=4

# Submits job k with its own key until the server answers 200/201 (bounded).
submit_k() {
    i=0
    while :; do
        out=$(curl -s --max-time 5 -w ' %{http_code}' -H 'Content-Type: application/json' \
            -H "Idempotency-Key: chaos-$seed-$1" --data-binary @"$TMP/job.json" \
            "$URL/api/v1/jobs" 2>/dev/null)
        case "${out##* }" in
        200 | 201)
            echo "${out% *}" | $JQ -r .id >>"$TMP/ids" || echo "chaos: bad answer to job $1: $out" >&2
            return 0
            ;;
        esac
        i=$((i + 1))
        [ "$i" -gt 100 ] && die "job $1 was never accepted: $out"
        sleep 0.2
    done
}

: >"$TMP/ids"
t_end=$(($(date +%s) + secs))
# half the jobs at once, the rest one per step of the chaos
k=0
while [ "$k" -lt $((njobs / 2)) ]; do
    k=$((k + 1))
    submit_k "$k"
done
server_kills=0
pool_kills=0
line=0
while [ "$(date +%s)" -lt "$t_end" ]; do
    line=$((line + 1))
    set -- $(sed -n "${line}p" "$TMP/plan")
    [ $# -eq 4 ] || break
    delay=$1 what=$2 which=$3 pause=$4
    # a job goes in every step until all are submitted
    if [ "$k" -lt "$njobs" ]; then
        k=$((k + 1))
        submit_k "$k"
    fi
    sleep "$delay"
    if [ "$what" -lt 30 ]; then
        kill9_server
        server_kills=$((server_kills + 1))
        sleep "$pause"
        start_server "$PORT" "$EP" $SFLAGS
    else
        # a pool that runs a job if there is one (the random bit picks which)
        busy=$(curl -s --max-time 5 "$URL/api/v1/workers" 2>/dev/null |
            $JQ -r '[.workers[] | select(.state == "busy") | .id] | .[]' 2>/dev/null)
        victim="pool-$which"
        if [ -n "$busy" ]; then
            nb=$(echo "$busy" | wc -l)
            victim=$(echo "$busy" | sed -n "$((which % nb + 1))p")
        fi
        kill9_pool "$(pool_pid "$victim")"
        pool_kills=$((pool_kills + 1))
        sleep "$pause"
        start_pool "$victim" 1
    fi
done
while [ "$k" -lt "$njobs" ]; do
    k=$((k + 1))
    submit_k "$k"
done
echo "chaos: $server_kills server kills, $pool_kills pool kills; draining"

# Everything is up again; every job must reach a terminal state.
sort -u "$TMP/ids" >"$TMP/uniq"
[ "$(wc -l <"$TMP/uniq")" -eq "$njobs" ] || die "$njobs keys made $(wc -l <"$TMP/uniq") jobs: $(tr "\n" " " <"$TMP/ids")"
for id in $(cat "$TMP/uniq"); do
    wait_terminal "$id" 120
done
ref_loss=""
ref_keys=""
succeeded=0
failed=0
for id in $(cat "$TMP/uniq"); do
    st=$(jq_job "$id" .state)
    n_att=$(jq_job "$id" '.attempts | length')
    check_gap_free "$id"
    twice=$(cut -d' ' -f2,3 "$TMP/rows-$id" | sort | uniq -d | head -3 | tr '\n' ' ')
    [ -z "$twice" ] || die "job $id ($n_att attempts): metric steps logged twice: $twice"
    case "$st" in
    SUCCEEDED)
        succeeded=$((succeeded + 1))
        loss=$(jq_job "$id" .result.test_loss)
        [ -n "$ref_loss" ] || ref_loss=$loss
        awk -v a="$loss" -v b="$ref_loss" 'BEGIN { d = a - b; if (d < 0) d = -d;
            exit !(d <= 1e-3 * (b < 0 ? -b : b) + 1e-6) }' ||
            die "job $id ($n_att attempts) test loss $loss, another job $ref_loss"
        # however often it was interrupted (server crashes, lost pools and
        # retries), a job has the points of one that saw none, by name and
        # step: nothing lost, nothing twice
        cut -d' ' -f2,3 "$TMP/rows-$id" | sort >"$TMP/keys-$id"
        [ -n "$ref_keys" ] || ref_keys="$TMP/keys-$id"
        cmp -s "$ref_keys" "$TMP/keys-$id" || {
            diff "$ref_keys" "$TMP/keys-$id" | head -6 >&2
            die "job $id ($n_att attempts): its metric points are not another job's, by name and step"
        }
        ;;
    FAILED)
        failed=$((failed + 1))
        [ "$(jq_job "$id" .reason)" = BACKOFF_LIMIT_EXCEEDED ] ||
            die "job $id FAILED with $(jq_job "$id" .reason): $(jq_job "$id" .message)"
        [ "$n_att" -eq $((max_restarts + 1)) ] || die "job $id FAILED after $n_att attempts"
        bad=$(jq_job "$id" '[.attempts[] | select(.reason != "WORKER_LOST" and .reason != "RANK_FAILED" and .reason != "INTERNAL")] | length')
        [ "$bad" -eq 0 ] || die "job $id: an attempt ended for a reason that is not retried"
        ;;
    *) die "job $id ended $st: $(jq_job "$id" .message)" ;;
    esac
    echo "  $id: $st, $n_att attempt(s), $(jq_job "$id" .metric_count) metric seqs ($(jq_job "$id" .metrics_dropped) dropped by retries), each step once"
done
ok "chaos seed $seed: $server_kills server kills, $pool_kills pool kills; $succeeded SUCCEEDED (test loss $ref_loss each), $failed FAILED with BACKOFF_LIMIT_EXCEEDED; no job lost, each metric step once"
echo "test_chaos: ok"
