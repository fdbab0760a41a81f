#!/bin/sh
# test_chain.sh - job chains (after) through kiln-server and a REAL pool (mpirun -np 2).
#
#  1. The example chain api/examples/chain/ (train ResNet-20 -> DMCP to 50 %
#     -> retrain), cut to 512 Fashion-MNIST images and one epoch a step, run
#     by its own run.sh with the kiln CLI (--after, --init-from): right after
#     submit the later steps are QUEUED, reason WAITING_FOR, naming the job
#     they wait for; every step SUCCEEDS; each records the SHA-256 of the
#     previous step's model.safetensors; the retrain step, submitted without
#     a model, runs the pruned network (fewer parameters than the trained
#     one, the same as the prune job's weights); its weights download.
#  2. A job after a job that is then cancelled ends CANCELLED, reason
#     DEPENDENCY_FAILED, naming that job.
#  3. 400 naming after[0]: an unknown job, a cancelled job.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"
KILN="$KILN_BIN/kiln"
src=$(cd "$(dirname "$0")/../../api/examples/chain" && pwd)

start_server
start_pool p1 2
export KILN_URL="$URL"

# 1. the example chain, small
mkdir "$TMP/chain"
small='.data.train_limit = 512 | .data.test_limit = 256 | .optim.epochs = 1 | .resources.ranks = 2'
$JQ "$small" "$src/1-train-resnet20-fmnist.json" >"$TMP/chain/1-train-resnet20-fmnist.json"
$JQ "$small | .prune.search_epochs = 1 | .prune.search.batch_size = 64" \
    "$src/2-prune-dmcp50.json" >"$TMP/chain/2-prune-dmcp50.json"
$JQ "$small" "$src/3-retrain.json" >"$TMP/chain/3-retrain.json"
cp "$src/run.sh" "$TMP/chain/run.sh"
KILN="$KILN" OUT="$TMP/retrained.safetensors" timeout 400 sh "$TMP/chain/run.sh" \
    >"$TMP/chain.out" 2>&1 &
runner=$!
n=0
until grep -q '^train ' "$TMP/chain.out"; do
    n=$((n + 1))
    [ "$n" -gt 100 ] && die "run.sh did not submit the chain: $(cat "$TMP/chain.out")"
    sleep 0.1
done
set -- $(sed -n 's/^train \([^ ]*\) -> prune \([^ ]*\) -> retrain \([^ ]*\)$/\1 \2 \3/p' \
    "$TMP/chain.out")
T=$1 P=$2 R=$3
for pair in "$P:$T" "$R:$P"; do
    j=${pair%%:*}
    dep=${pair#*:}
    [ "$(jq_job "$j" .state)" = QUEUED ] && [ "$(jq_job "$j" .reason)" = WAITING_FOR ] ||
        [ "$(jq_job "$dep" .state)" = SUCCEEDED ] ||
        die "job $j: $(jq_job "$j" .state) $(jq_job "$j" .reason) while $dep is $(jq_job "$dep" .state)"
    case "$(jq_job "$j" .message)" in *"$dep"*) ;; *) [ "$(jq_job "$dep" .state)" = SUCCEEDED ] ||
        die "job $j does not say it waits for $dep: $(jq_job "$j" .message)" ;; esac
done
[ "$(jq_job "$R" '.after[0].id')" = "$P" ] || die "job $R does not list $P in after"
wait "$runner" || die "run.sh failed: $(tail -5 "$TMP/chain.out")"
for j in $T $P $R; do
    [ "$(jq_job "$j" .state)" = SUCCEEDED ] || die "job $j: $(jq_job "$j" .state) $(jq_job "$j" .message)"
done
for pair in "$P:$T" "$R:$P"; do
    j=${pair%%:*}
    dep=${pair#*:}
    curl -s --max-time 10 -o "$TMP/$dep.safetensors" "$URL/api/v1/jobs/$dep/artifacts/model.safetensors"
    want=$(sha256sum "$TMP/$dep.safetensors" | cut -d' ' -f1)
    [ "$(jq_job "$j" .init_sha256)" = "$want" ] || die "job $j did not start from $dep's weights"
done
pt=$(jq_job "$T" .params)
pr=$(jq_job "$R" .params)
[ "$pr" -lt "$pt" ] || die "the retrain step has $pr params, the trained network $pt"
[ "$(jq_job "$R" .spec.model.arch)" = resnet_cifar ] || die "the retrain step has no model"
[ -s "$TMP/retrained.safetensors" ] || die "the retrained weights did not download"
"$KILN_BIN/kiln-worker" eval --weights "$TMP/retrained.safetensors" \
    --data '{"dataset":"fashion-mnist","test_limit":256}' >"$TMP/eval.out" ||
    die "eval of the retrained weights: $(cat "$TMP/eval.out")"
ok "chain train -> prune -> retrain: WAITING_FOR, each step from the last one's weights ($pt -> $pr params)"

# 2. a cancelled dependency cancels the job after it
$JQ '.resources.ranks = 8 | .optim.batch_size = 64' "$TMP/chain/1-train-resnet20-fmnist.json" \
    >"$TMP/never.json"
X=$("$KILN" submit -q "$TMP/never.json") # no pool has 8 ranks: it stays QUEUED
D=$("$KILN" submit -q --after "$X" "$TMP/chain/1-train-resnet20-fmnist.json")
[ "$(jq_job "$D" .reason)" = WAITING_FOR ] || die "job $D: $(jq_job "$D" .reason)"
"$KILN" cancel "$X" >/dev/null
wait_state "$D" CANCELLED 10
[ "$(jq_job "$D" .reason)" = DEPENDENCY_FAILED ] || die "job $D: reason $(jq_job "$D" .reason)"
case "$(jq_job "$D" .message)" in *"$X"*CANCELLED*) ;; *) die "job $D: $(jq_job "$D" .message)" ;; esac
ok "after a cancelled job: CANCELLED, DEPENDENCY_FAILED ($(jq_job "$D" .message))"

# 3. after an unknown or a FAILED job: 400
for dep in j0000000000unknown "$X"; do
    $JQ --arg d "$dep" '.after = [$d]' "$TMP/chain/1-train-resnet20-fmnist.json" >"$TMP/bad.json"
    code=$(curl -s --max-time 10 -o "$TMP/resp" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary @"$TMP/bad.json" "$URL/api/v1/jobs")
    [ "$code" = 400 ] && [ "$($JQ -r '.error.details[0].field' "$TMP/resp")" = "after[0]" ] ||
        die "after [$dep]: HTTP $code $(cat "$TMP/resp")"
done
ok "400 naming after[0]: an unknown job, a cancelled job"
