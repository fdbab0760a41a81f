#!/bin/sh
# test_pool_split.sh - one REAL 2-rank pool runs two 1-rank jobs at once (a split of its
# MPI world), a 2-rank job on both ranks afterwards, and a cancel of the job on rank 1.
#
#   1. two 1-rank jobs with the same spec and seed: both RUNNING on the pool at the same
#      time (GET /workers lists both, no rank free), one on world rank 0 and one on rank
#      1, whose reports reach the server through rank 0; both SUCCEED with the same
#      metrics, value for value, and the same model.safetensors (bit for bit), and the
#      relayed job's metric seqs are 1..n with every logged step once;
#   2. a 2-rank job then runs on both ranks and SUCCEEDS;
#   3. two long 1-rank jobs: cancelling the one on rank 1 ends it CANCELLED while the
#      one on rank 0 runs on; then that one is cancelled too;
#   5. (before 4) a job from job 1's weights (init_from) runs on rank 1, the weights sent
#      by rank 0, and scores job 1's top-1 after one step at lr 1e-9;
#   4. SIGUSR1 to rank 1 alone while both ranks run a job each: both end POOL_STOPPED
#      at their next step, the pool leaves with status 0, and both jobs resume on
#      another pool from their checkpoints.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

start_server
export KILN_THREADS=1
start_pool split 2

cat >"$TMP/job.json" <<EOF
{"name":"split","seed":7,"model":{"arch":"resnet_cifar","depth":8,"widths":[8,16,32]},
 "data":{"dataset":"fashion-mnist","train_limit":2048,"test_limit":256},
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},"resources":{"ranks":1},
 "checkpoint":{"every_steps":40}}
EOF
workers() { curl -s --max-time 10 "$URL/api/v1/workers"; }

# ---- 1. two 1-rank jobs at once -------------------------------------------------------
a=$(submit "$TMP/job.json")
b=$(submit "$TMP/job.json")
both=""
for _ in $(seq 1 600); do
    if [ "$(jq_job "$a" .state)" = RUNNING ] && [ "$(jq_job "$b" .state)" = RUNNING ]; then
        w=$(workers)
        if [ "$(echo "$w" | $JQ '.workers[0].current_jobs | length')" = 2 ]; then
            both=$w
            break
        fi
    fi
    sleep 0.1
done
[ -n "$both" ] || die "jobs $a and $b never ran on the pool at the same time"
[ "$(echo "$both" | $JQ '.workers[0].free_ranks')" = 0 ] || die "a rank is free with two jobs on it"
[ "$(jq_job "$a" .pool_id)" = split ] && [ "$(jq_job "$b" .pool_id)" = split ] ||
    die "the jobs are not both on pool split"
ok "jobs $a and $b RUNNING on the 2-rank pool at once; /workers lists both, 0 ranks free"

wait_state "$a" SUCCEEDED 300
wait_state "$b" SUCCEEDED 300
grep -q "job $a attempt 1: on 1 of the pool's 2 ranks (world ranks 0..0)" "$TMP/pool-split.log" ||
    die "job $a did not run on world rank 0"
grep -q "job $b attempt 1: on 1 of the pool's 2 ranks (world ranks 1..1)" "$TMP/pool-split.log" ||
    die "job $b did not run on world rank 1"
# every metric but throughput (wall-clock), in order
metric_rows "$a" | cut -d' ' -f2- | grep -v '^throughput ' >"$TMP/m-a"
metric_rows "$b" | cut -d' ' -f2- | grep -v '^throughput ' >"$TMP/m-b"
[ -s "$TMP/m-a" ] || die "job $a has no metrics"
cmp -s "$TMP/m-a" "$TMP/m-b" ||
    die "the same job on rank 0 and on rank 1 logged different metrics: $(diff "$TMP/m-a" "$TMP/m-b" | head -4 | tr '\n' ' ')"
check_gap_free "$b"
for j in "$a" "$b"; do
    curl -s --max-time 30 -o "$TMP/model-$j" "$URL/api/v1/jobs/$j/artifacts/model.safetensors"
done
[ -s "$TMP/model-$a" ] || die "no model.safetensors for $a"
cmp -s "$TMP/model-$a" "$TMP/model-$b" || die "the two models differ"
[ "$(jq_job "$a" .result.test_top1)" = "$(jq_job "$b" .result.test_top1)" ] ||
    die "the two results differ"
for j in "$a" "$b"; do
    curl -s --max-time 30 -o "$TMP/ckpt-$j" "$URL/api/v1/jobs/$j/checkpoints/latest"
done
[ -s "$TMP/ckpt-$b" ] || die "job $b (rank 1) stored no checkpoint through rank 0"
cmp -s "$TMP/ckpt-$a" "$TMP/ckpt-$b" || die "the two latest checkpoints differ"
ok "both SUCCEEDED: $(wc -l <"$TMP/m-a") metric points equal value for value, model.safetensors bit-identical, top-1 $(jq_job "$a" .result.test_top1); the relayed job's metric seqs 1..n, its latest checkpoint bit-identical too"

# ---- 2. a 2-rank job on both ranks -----------------------------------------------------
$JQ '.resources.ranks = 2 | .optim.epochs = 1' "$TMP/job.json" >"$TMP/job2.json"
c=$(submit "$TMP/job2.json")
wait_state "$c" SUCCEEDED 300
grep -q "job $c attempt 1: on 2 of the pool's 2 ranks (world ranks 0..1)" "$TMP/pool-split.log" ||
    die "job $c did not run on both ranks"
ok "2-rank job $c SUCCEEDED on both ranks"

# ---- 3. cancel the job on rank 1 --------------------------------------------------------
$JQ '.optim.epochs = 50 | .name = "long"' "$TMP/job.json" >"$TMP/long.json"
d=$(submit "$TMP/long.json")
wait_state "$d" RUNNING 60
e=$(submit "$TMP/long.json")
wait_state "$e" RUNNING 60
grep -q "job $e attempt 1: on 1 of the pool's 2 ranks (world ranks 1..1)" "$TMP/pool-split.log" ||
    die "job $e is not on world rank 1"
curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$e/cancel" >/dev/null
wait_state "$e" CANCELLED 60
[ "$(jq_job "$d" .state)" = RUNNING ] || die "job $d ($(jq_job "$d" .state)) stopped with $e"
curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$d/cancel" >/dev/null
wait_state "$d" CANCELLED 60
ok "cancel of $e on rank 1: CANCELLED while $d on rank 0 ran on; then $d CANCELLED"

# ---- 5. init_from weights to a job on rank 1 ----------------------------------------------
# a long job holds rank 0; the job from a's weights (one step at lr 1e-9) runs on rank 1,
# its weights sent by rank 0 over MPI, and scores a's top-1
h=$(submit "$TMP/long.json")
wait_state "$h" RUNNING 60
$JQ --arg a "$a" '.init_from = {"job": $a} | .optim = {"lr": 1e-9, "batch_size": 32, "epochs": 1, "max_steps": 1, "warmup_epochs": 0} | del(.checkpoint)' \
    "$TMP/job.json" >"$TMP/from-a.json"
i=$(submit "$TMP/from-a.json")
wait_state "$i" SUCCEEDED 120
grep -q "job $i attempt 1: on 1 of the pool's 2 ranks (world ranks 1..1)" "$TMP/pool-split.log" ||
    die "job $i did not run on world rank 1"
top_a=$(jq_job "$a" .result.test_top1)
top_i=$(jq_job "$i" .result.test_top1)
awk -v a="$top_a" -v b="$top_i" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.03) }' ||
    die "job $i from $a's weights on rank 1 scored $top_i, $a scored $top_a"
curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$h/cancel" >/dev/null
wait_state "$h" CANCELLED 60
ok "init_from {job: $a} on rank 1: top-1 $top_i after one step at lr 1e-9 ($a: $top_a), the weights sent from rank 0"

# ---- 4. a stop asked of rank 1 alone stops both jobs, which resume elsewhere -------------
f=$(submit "$TMP/long.json")
wait_state "$f" RUNNING 60
g=$(submit "$TMP/long.json")
wait_state "$g" RUNNING 60
split_pid=$POOL_PID
start_pool spare 2
r1=$(rank_pid "$split_pid" 1) || die "no rank 1 under mpirun $split_pid"
kill -USR1 "$r1"
for _ in $(seq 1 300); do
    kill -0 "$split_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$split_pid" 2>/dev/null && die "pool split did not leave within 30 s of a stop on its rank 1"
st=0
wait "$split_pid" || st=$?
[ "$st" = 0 ] || die "pool split exited with status $st"
for j in "$f" "$g"; do
    for _ in $(seq 1 300); do
        [ "$(jq_job "$j" '.attempts | length')" -ge 2 ] && [ "$(jq_job "$j" .state)" = RUNNING ] && break
        sleep 0.1
    done
    [ "$(jq_job "$j" '.attempts[0].reason')" = POOL_STOPPED ] ||
        die "attempt 1 of $j ended $(jq_job "$j" '.attempts[0].reason'), not POOL_STOPPED"
    [ "$(jq_job "$j" .pool_id)" = spare ] || die "job $j did not move to pool spare"
    grep -q "job $j attempt 2 -> pool spare .*resuming from a checkpoint" "$TMP/server.log" ||
        die "job $j did not resume from its checkpoint"
    curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$j/cancel" >/dev/null
done
wait_state "$f" CANCELLED 60
wait_state "$g" CANCELLED 60
ok "SIGUSR1 to rank 1 (root of $g) alone: both jobs ended POOL_STOPPED, the pool left with status 0, both resumed on pool spare from their checkpoints"
