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
#     The retrained weights, exported as ONNX, give onnxruntime kiln's logits
#     (1e-4) and the job's reported top-1 on the same test samples.
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
# ... and leaves kiln as ONNX that onnxruntime scores as the job reported
"$KILN_BIN/kiln-worker" export --onnx "$TMP/retrained.onnx" --weights "$TMP/retrained.safetensors" \
    >"$TMP/export.out" 2>&1 || die "export: $(cat "$TMP/export.out")"
"$KILN_BIN/kiln-worker" eval --weights "$TMP/retrained.safetensors" \
    --data '{"dataset":"fashion-mnist","test_limit":256}' --dump "$TMP/testset.json" >"$TMP/eval2.out" ||
    die "eval --dump: $(cat "$TMP/eval2.out")"
reported=$(job "$R" | grep -o '"test_top1":[0-9.e-]*' | head -1 | cut -d: -f2)
top1=$($JQ .top1 "$TMP/testset.json")
awk -v a="$top1" -v b="$reported" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
    die "the retrained weights evaluate to $top1, the job reported $reported"
node "$(dirname "$0")/../export/check_onnx.mjs" "$TMP/retrained.onnx" "$TMP/testset.json" \
    >"$TMP/onnx.out" 2>&1 || die "onnxruntime: $(cat "$TMP/onnx.out")"
ok "the retrained network as ONNX: $(cat "$TMP/onnx.out") = the job's reported $reported"

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

# 4. MobileNetV3 and EfficientNet through the service, on the 2-rank pool: a DMCP prune of
# a MobileNetV3-Small and a DNA adapt of an EfficientNet that has to grow (1.2x, window
# max 1.0: only the elastic space's expansion reaches it), on synthetic images
SYN='{"dataset":"synthetic","synthetic":{"train":256,"test":64,"classes":5,"channels":3,"size":16}}'
cat >"$TMP/mbv3.json" <<JSON
{"name":"prune-mbv3","type":"prune","seed":2,"resources":{"ranks":2},
 "model":{"arch":"mobilenetv3","variant":"small","width_mult":0.5,"cifar":true},"data":$SYN,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1},
 "prune":{"method":"dmcp","target_ratio":0.5,"warmup_epochs":1,"search_epochs":1,
          "search":{"batch_size":32},"calib_batches":2}}
JSON
cat >"$TMP/effnet.json" <<JSON
{"name":"adapt-effnet","type":"adapt","seed":3,"resources":{"ranks":2},
 "model":{"arch":"efficientnet","width_mult":0.25,"depth_mult":0.5,"cifar":true},"data":$SYN,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1},
 "adapt":{"method":"dna","target_ratio":1.2,"window":{"max":1.0},"warmup_epochs":1,
          "search_epochs":5,"search":{"batch_size":32},"calib_batches":2,
          "arch":{"lr":20,"init":"existing"},"elastic":{"check_every":2,"settle_steps":2}}}
JSON
M=$(submit "$TMP/mbv3.json")
E=$(submit "$TMP/effnet.json")
for j in $M $E; do
    wait_terminal "$j" 300
    [ "$(jq_job "$j" .state)" = SUCCEEDED ] || die "job $j: $(jq_job "$j" .state) $(jq_job "$j" .message)"
done
curl -s --max-time 10 -o "$TMP/eff-arch.json" "$URL/api/v1/jobs/$E/artifacts/architecture.json"
curl -s --max-time 10 -o "$TMP/eff-elastic.json" "$URL/api/v1/jobs/$E/artifacts/elastic.json"
[ "$($JQ -r .arch "$TMP/eff-arch.json")" = efficientnet ] || die "adapt-effnet: $(cat "$TMP/eff-arch.json")"
n_el=$($JQ '.counts.total' "$TMP/eff-elastic.json")
[ "$n_el" -gt 0 ] || die "adapt-effnet grew to 1.2x without an elastic event"
ok "MobileNetV3 pruned and EfficientNet grown to 1.2x through the service ($n_el elastic events)"
