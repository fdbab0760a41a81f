#!/bin/sh
# test_oom.sh - a model too large for the host: the probe's ResNet (232e9
# parameters) submitted while no pool is known (admission has nothing to
# compare with), then a real pool takes it: the attempt ends FAILED with
# OUT_OF_MEMORY at once (no retry, no WORKER_LOST), the pool lives on and runs
# the next job, and once the pool has said its memory the same model is
# refused at submit with 400 naming the field.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

start_server 0 'tcp://127.0.0.1:*'
cat >"$TMP/huge.json" <<'JOB'
{"name": "huge", "model": {"arch": "resnet_cifar", "depth": 386, "widths": [8192, 8192, 8192]},
 "data": {"dataset": "synthetic", "synthetic": {"train": 256, "test": 64}},
 "optim": {"epochs": 1, "batch_size": 32}, "retry": {"max_restarts": 3}, "resources": {"ranks": 1}}
JOB
cat >"$TMP/small.json" <<'JOB'
{"name": "small", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": {"dataset": "synthetic", "synthetic": {"train": 256, "test": 64}},
 "optim": {"epochs": 1, "batch_size": 32}, "resources": {"ranks": 1}}
JOB
huge=$(submit "$TMP/huge.json")
[ -n "$huge" ] && [ "$huge" != null ] || die "the huge job was not accepted with no pool known"
start_pool oom-a 1
wait_state "$huge" FAILED 60
[ "$(jq_job "$huge" .reason)" = OUT_OF_MEMORY ] || die "reason: $(job "$huge")"
[ "$(jq_job "$huge" .attempt)" = 1 ] || die "the OOM job was retried: $(job "$huge")"
jq_job "$huge" .message | grep -q "out of memory: the model needs .* per rank" ||
    die "message: $(jq_job "$huge" .message)"
kill -0 "$POOL_PID" 2>/dev/null || die "the pool died"
grep -q "out of memory allocating" "$TMP"/pool-oom-a.log && die "the worker aborted"
ok "the 232e9-parameter ResNet: FAILED OUT_OF_MEMORY on attempt 1, the pool alive"

small=$(submit "$TMP/small.json")
wait_state "$small" SUCCEEDED 120
[ "$(jq_job "$small" ".attempts[-1].pool_id")" = oom-a ] || die "the small job ran on $(job "$small")"
ok "the same pool ran the next job to SUCCEEDED"

mem=$(curl -s --max-time 10 "$URL/api/v1/workers" | $JQ -r '[.workers[]?, .[]?] | map(select(type == "object")) | .[0].rank_memory')
[ "$mem" -gt 100000000 ] 2>/dev/null || die "the pool did not say its memory: $mem"
code=$(curl -s -o "$TMP/refused.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' --data-binary @"$TMP/huge.json" "$URL/api/v1/jobs")
[ "$code" = 400 ] || die "the huge job with a pool known: $code $(cat "$TMP/refused.json")"
$JQ -e '.error.details[0].field == "model"' "$TMP/refused.json" >/dev/null ||
    die "refusal: $(cat "$TMP/refused.json")"
ok "with the pool's memory known, the same job is refused at submit: 400 on model"
echo "test_oom: ok"
