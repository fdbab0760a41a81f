# test_prune.sh - prune jobs through kiln-worker run, on 1 and 2 ranks.
#
# A short DMCP job and a uniform job on synthetic data: each must finish,
# leave architecture.json / model.safetensors / report.json, an
# architecture whose MFLOPs lie in the +-1 % target band, and weights that
# `kiln-worker eval --model architecture.json` scores at the accuracy the
# job reported. The DMCP job also runs data-parallel on 2 ranks, where
# every rank must derive the same network (rank 0 writes it; the others
# would fail the retrain's weight broadcast otherwise). A target whose band
# no network of the space reaches fails, through kiln-worker run and as a
# FAILED job of the service, with a message naming prune.target_ratio and
# the nearest reachable MFLOPs, and nothing trained.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp

DATA='{"dataset":"synthetic","synthetic":{"train":256,"test":128,"classes":4,"channels":1,"size":12}}'
MODEL='{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
        "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]}'

cat > "$TMP/dmcp.json" <<JSON
{"name":"it-dmcp","type":"prune","seed":2,"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},
 "prune":{"method":"dmcp","target_mflops":0.15,"warmup_epochs":1,"search_epochs":1,
          "search":{"batch_size":32},"calib_batches":2}}
JSON
# every unit 1 or 2 channels wide: no network within +-1 % of 40 %
cat > "$TMP/gap.json" <<JSON
{"name":"it-gap","type":"prune","seed":2,"data":$DATA,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":2,
          "stages":[{"width":2,"mids":[2]}]},
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},
 "prune":{"method":"uniform","target_ratio":0.4}}
JSON
cat > "$TMP/uniform.json" <<JSON
{"name":"it-uniform","type":"prune","seed":2,"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},
 "prune":{"method":"uniform","target_ratio":0.4}}
JSON

# check_run DIR LOG: artifacts, band, and eval == reported accuracy
check_run() {
    dir=$1
    log=$2
    for f in architecture.json model.safetensors report.json; do
        [ -s "$dir/$f" ] || fail "$dir/$f missing"
    done
    summary=$(grep '"event":"finished"' "$log") || fail "no summary line in $log"
    reported=$(echo "$summary" | sed 's/.*"test_top1":\([0-9.e-]*\).*/\1/')
    mflops=$(echo "$summary" | sed 's/.*"mflops":\([0-9.e-]*\),.*/\1/')
    target=$(echo "$summary" | sed 's/.*"target_mflops":\([0-9.e-]*\),.*/\1/')
    awk -v m="$mflops" -v t="$target" 'BEGIN { exit !(m <= 1.01 * t && m >= 0.99 * t) }' ||
        fail "$dir: $mflops MFLOPs for a target of $target"
    got=$("$WORKER" eval --model "$dir/architecture.json" --weights "$dir/model.safetensors" \
        --data "$DATA") || fail "eval of $dir failed"
    top1=$(echo "$got" | sed 's/.*"top1":\([0-9.e-]*\),.*/\1/')
    awk -v a="$top1" -v b="$reported" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
        fail "$dir: eval says $top1, the job reported $reported"
}

"$WORKER" run "$TMP/dmcp.json" --out "$TMP/d1" --no-progress > "$TMP/d1.log" 2>&1 ||
    fail "dmcp run: $(tail -3 "$TMP/d1.log")"
check_run "$TMP/d1" "$TMP/d1.log"
[ -s "$TMP/d1/supernet.safetensors" ] || fail "no supernet.safetensors"
ok "dmcp job: architecture in the band, weights evaluate to the reported accuracy"

"$WORKER" run "$TMP/uniform.json" --out "$TMP/u1" --no-progress > "$TMP/u1.log" 2>&1 ||
    fail "uniform run: $(tail -3 "$TMP/u1.log")"
check_run "$TMP/u1" "$TMP/u1.log"
grep -q '"width_multiplier"' "$TMP/u1/report.json" || fail "no width_multiplier in the report"
ok "uniform job: the same checks"

# a search started from the first job's warm-up supernet, no warm-up of its own
sed -e 's/"warmup_epochs":1/"warmup_epochs":0/' \
    -e "s|\"seed\":2,|\"seed\":2,\"init_from\":\"$TMP/d1/supernet.safetensors\",|" \
    "$TMP/dmcp.json" > "$TMP/dmcp-init.json"
"$WORKER" run "$TMP/dmcp-init.json" --out "$TMP/d3" --no-progress > "$TMP/d3.log" 2>&1 ||
    fail "dmcp run from a supernet: $(tail -3 "$TMP/d3.log")"
check_run "$TMP/d3" "$TMP/d3.log"
ok "dmcp job from a given supernet (init_from, no warm-up)"

kiln_mpirun -np 2 "$WORKER" run "$TMP/dmcp.json" --out "$TMP/d2" --no-progress \
    > "$TMP/d2.log" 2>&1 || fail "2-rank dmcp run: $(tail -3 "$TMP/d2.log")"
grep -q "rank 1 of 2" "$TMP/d2.log" || fail "the 2-rank run did not start 2 ranks"
check_run "$TMP/d2" "$TMP/d2.log"
ok "dmcp job on 2 ranks"

# a bad spec is refused with the field named
sed 's/"target_mflops":0.15/"target_mflops":5/' "$TMP/dmcp.json" > "$TMP/bad.json"
if "$WORKER" run "$TMP/bad.json" --out "$TMP/bad" > "$TMP/bad.log" 2>&1; then
    fail "a target above the model was accepted"
fi
grep -q "prune.target_mflops" "$TMP/bad.log" || fail "the error does not name prune.target_mflops"
ok "a target above the model is refused naming prune.target_mflops"

if "$WORKER" run "$TMP/gap.json" --out "$TMP/gap" > "$TMP/gap.log" 2>&1; then
    fail "a target no network reaches within the band was trained"
fi
grep -q "prune.target_ratio: no network .*nearest reachable network found has 0.003896 MFLOPs" \
    "$TMP/gap.log" || fail "the error does not name the field and the nearest: $(cat "$TMP/gap.log")"
[ ! -e "$TMP/gap/model.safetensors" ] || fail "a network outside the band was trained"
ok "a band no network reaches fails naming prune.target_ratio and the nearest MFLOPs"

# through the service: a 2-rank pool runs the dmcp job submitted over HTTP
. "$(dirname "$0")/service.sh"
start_server
start_pool prune-pool 2
run_job "$TMP/dmcp.json" 240
id=$JOB
has_artifacts "$id" architecture.json model.safetensors report.json
curl -sf "$URL/api/v1/jobs/$id/artifacts/architecture.json" -o "$TMP/arch.json" ||
    die "download of architecture.json"
curl -sf "$URL/api/v1/jobs/$id/artifacts/model.safetensors" -o "$TMP/model.safetensors" ||
    die "download of model.safetensors"
"$WORKER" eval --model "$TMP/arch.json" --weights "$TMP/model.safetensors" --data "$DATA" \
    > "$TMP/eval.json" || die "eval of the downloaded prune result"
ok "prune job through the server: SUCCEEDED, gap-free metrics, artifacts download and evaluate"

gid=$(submit "$TMP/gap.json")
[ -n "$gid" ] && [ "$gid" != null ] || die "submit of the unreachable job"
wait_state "$gid" FAILED 60
[ "$(jq_job "$gid" .reason)" = INVALID_DATA ] || die "job $gid FAILED with $(jq_job "$gid" .reason)"
jq_job "$gid" .message | grep -q "prune.target_ratio: .*nearest reachable network found has 0.003896" ||
    die "job $gid: the message does not name the field and the nearest: $(jq_job "$gid" .message)"
[ "$(jq_job "$gid" '.attempts | length')" = 1 ] || die "job $gid was retried"
ok "a band no network reaches: FAILED (INVALID_DATA) at once, the message names prune.target_ratio"
