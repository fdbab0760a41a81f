#!/bin/sh
# test_init_from.sh - init_from through kiln-server and a REAL pool (mpirun -np 2).
#
#  1. A small train job A succeeds. A train job from {"job": A} with a
#     learning rate of 1e-9 and one step scores A's accuracy (+-0.03), where
#     the same job from scratch does not: the weights reached the pool. A
#     second such job gets them from the pool's cache (pool log), and both
#     record the SHA-256 of A's model.safetensors.
#  2. Rejected at submit with 400 naming init_from: an unknown job id, a
#     job that has not succeeded (queued), an artifact A does not have, a
#     network that does not fit A's weights, a relative path. Deleting A
#     while a queued job starts from it: 409.
#  3. Paths on the pool hosts: a truncated copy of A's weights, an empty
#     file, /etc/passwd and a missing file each end FAILED after ONE
#     attempt, reason INVALID_INIT, with the loader's message.
#  4. A DMCP prune job from {"job": A} succeeds.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

MODEL='{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
        "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]}'
DATA='{"dataset":"synthetic","synthetic":{"train":512,"test":256,"classes":4,"channels":1,"size":12}}'

spec() { # NAME INIT_FROM(JSON or "") OPTIM [MODEL]
    init=""
    [ -n "$2" ] && init="\"init_from\":$2,"
    cat <<EOF
{"name":"$1",$init"seed":5,"model":${4:-$MODEL},"data":$DATA,"optim":$3,
 "retry":{"max_restarts":2},"resources":{"ranks":2}}
EOF
}
TRAIN='{"lr":0.1,"batch_size":32,"epochs":3}'
TINY='{"lr":1e-9,"batch_size":32,"epochs":1,"max_steps":1,"warmup_epochs":0}'

post() { # FILE -> prints the HTTP status; the body is in $TMP/resp
    curl -s --max-time 30 -o "$TMP/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$1" "$URL/api/v1/jobs"
}

expect_400() { # FILE WHAT-IN-MESSAGE
    code=$(post "$1")
    [ "$code" = 400 ] || die "$1: HTTP $code, want 400: $(cat "$TMP/resp")"
    field=$($JQ -r '.error.details[0].field' "$TMP/resp")
    [ "$field" = init_from ] || die "$1: 400 names '$field', not init_from: $(cat "$TMP/resp")"
    grep -qF "$2" "$TMP/resp" || die "$1: the message does not say '$2': $(cat "$TMP/resp")"
}

start_server
start_pool p1 2

spec a "" "$TRAIN" >"$TMP/a.json"
A=$(submit "$TMP/a.json")
wait_terminal "$A" 120
[ "$(jq_job "$A" .state)" = SUCCEEDED ] || die "job A: $(jq_job "$A" .message)"
top_a=$(jq_job "$A" .result.test_top1)
curl -s --max-time 10 -o "$TMP/a.safetensors" "$URL/api/v1/jobs/$A/artifacts/model.safetensors"
sha_a=$(sha256sum "$TMP/a.safetensors" | cut -d' ' -f1)

# 1. the weights reach the pool
spec from-a "{\"job\":\"$A\"}" "$TINY" >"$TMP/from-a.json"
spec fresh "" "$TINY" >"$TMP/fresh.json"
B=$(submit "$TMP/from-a.json")
F=$(submit "$TMP/fresh.json")
wait_terminal "$B" 60
wait_terminal "$F" 60
[ "$(jq_job "$B" .state)" = SUCCEEDED ] || die "job from A: $(jq_job "$B" .message)"
top_b=$(jq_job "$B" .result.test_top1)
top_f=$(jq_job "$F" .result.test_top1)
awk -v a="$top_a" -v b="$top_b" -v f="$top_f" 'BEGIN {
    d = a - b; if (d < 0) d = -d; e = a - f; if (e < 0) e = -e; exit !(d <= 0.03 && e > 0.1) }' ||
    die "A scored $top_a; from A after one step at lr 1e-9: $top_b; from scratch: $top_f"
[ "$(jq_job "$B" .init_sha256)" = "$sha_a" ] ||
    die "job $B records $(jq_job "$B" .init_sha256), not $sha_a"
[ "$(jq_job "$B" '.init_from.job')" = "$A" ] || die "job $B does not show its init_from"
grep -q "sent by the server, now cached" "$TMP/pool-p1.log" || die "no 'sent by the server' log"
ok "init_from {job: A}: top-1 $top_b after one step at lr 1e-9 (A: $top_a, from scratch: $top_f)"

B2=$(submit "$TMP/from-a.json")
wait_terminal "$B2" 60
[ "$(jq_job "$B2" .state)" = SUCCEEDED ] || die "second job from A: $(jq_job "$B2" .message)"
[ "$(jq_job "$B2" .result.test_top1)" = "$top_b" ] || die "second job from A scores differently"
grep -q "from the cache" "$TMP/pool-p1.log" || die "the second job did not use the pool's cache"
ok "the same weights again come from the pool's cache"

# 2. rejected at submit
spec x '"j0000000000unknown"' "$TINY" >"$TMP/unknown.json"
expect_400 "$TMP/unknown.json" "no job 'j0000000000unknown'"
sed 's/"ranks":2/"ranks":8/' "$TMP/fresh.json" >"$TMP/never.json"
Q=$(submit "$TMP/never.json") # no pool has 8 ranks: it stays QUEUED
spec x "{\"job\":\"$Q\"}" "$TINY" >"$TMP/queued.json"
expect_400 "$TMP/queued.json" "is QUEUED, not SUCCEEDED"
curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$Q/cancel" >/dev/null
spec x "{\"job\":\"$A\",\"artifact\":\"nope.safetensors\"}" "$TINY" >"$TMP/noart.json"
expect_400 "$TMP/noart.json" "has no artifact 'nope.safetensors' (it has: model.safetensors)"
OTHER='{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
        "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[8]}]}'
spec x "{\"job\":\"$A\"}" "$TINY" "$OTHER" >"$TMP/arch.json"
expect_400 "$TMP/arch.json" "does not fit the model config: model.stages"
spec x '"runs/a/model.safetensors"' "$TINY" >"$TMP/rel.json"
expect_400 "$TMP/rel.json" "relative path"
ok "400 naming init_from: unknown job, queued job, missing artifact, another network, relative path"
sed 's/"ranks":2/"ranks":8/' "$TMP/from-a.json" >"$TMP/waiting.json"
W=$(submit "$TMP/waiting.json") # queued for good: A's weights must stay
code=$(curl -s --max-time 10 -o "$TMP/resp" -w '%{http_code}' -X DELETE "$URL/api/v1/jobs/$A")
[ "$code" = 409 ] && grep -q "$W" "$TMP/resp" || die "delete of A while $W starts from it: HTTP $code $(cat "$TMP/resp")"
curl -s --max-time 10 -X POST "$URL/api/v1/jobs/$W/cancel" >/dev/null
ok "A cannot be deleted while a queued job starts from its weights (409)"

# 3. bad files on the pool hosts: FAILED once, not retried, with the loader's message
size_a=$(stat -c %s "$TMP/a.safetensors")
head -c $((size_a - 1000)) "$TMP/a.safetensors" >"$TMP/truncated.safetensors"
: >"$TMP/empty.safetensors"
for case in "truncated:$TMP/truncated.safetensors:past the" "empty:$TMP/empty.safetensors:" \
    "passwd:/etc/passwd:" "missing:$TMP/missing.safetensors:No such file"; do
    name=${case%%:*}
    rest=${case#*:}
    path=${rest%%:*}
    want=${rest#*:}
    spec "bad-$name" "\"$path\"" "$TINY" >"$TMP/bad-$name.json"
    J=$(submit "$TMP/bad-$name.json")
    [ -n "$J" ] && [ "$J" != null ] || die "bad-$name: not accepted: $(post "$TMP/bad-$name.json")"
    wait_terminal "$J" 60
    st=$(jq_job "$J" .state)
    reason=$(jq_job "$J" .reason)
    msg=$(jq_job "$J" .message)
    n=$(jq_job "$J" '.attempts | length')
    [ "$st" = FAILED ] && [ "$reason" = INVALID_INIT ] && [ "$n" = 1 ] ||
        die "bad-$name: $st $reason after $n attempt(s): $msg"
    case "$msg" in *init_from*"$path"*"$want"*) ;; *) die "bad-$name: message '$msg'" ;; esac
    echo "  $name: $msg"
done
ok "truncated, empty, /etc/passwd, missing: FAILED after one attempt, INVALID_INIT, loader's message"

# 4. a prune job from A
cat >"$TMP/prune.json" <<EOF
{"name":"prune-a","type":"prune","seed":2,"init_from":{"job":"$A"},"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1},"resources":{"ranks":2},
 "prune":{"method":"dmcp","target_ratio":0.6,"warmup_epochs":0,"search_epochs":1,
          "search":{"batch_size":32},"calib_batches":2}}
EOF
P=$(submit "$TMP/prune.json")
[ -n "$P" ] && [ "$P" != null ] || die "prune job not accepted: $(post "$TMP/prune.json"; cat "$TMP/resp")"
wait_terminal "$P" 180
[ "$(jq_job "$P" .state)" = SUCCEEDED ] || die "prune job from A: $(jq_job "$P" .message)"
ok "a DMCP prune job from {job: A} succeeds (top-1 $(jq_job "$P" .result.test_top1))"
