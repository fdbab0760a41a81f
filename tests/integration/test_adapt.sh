# test_adapt.sh - adapt jobs through kiln-worker run and through the service.
#
# A DNA job that shrinks a small ResNet and one that grows it, a baseline
# job, a DNA job on 2 ranks, and a DNA job submitted over HTTP to a 2-rank
# pool. Each must finish with architecture.json / model.safetensors /
# report.json / elastic.json, an architecture whose MFLOPs lie in the
# +-1 % target band on the right side of the original network, weights that
# `kiln-worker eval` scores at the accuracy the job reported, and (DNA) as
# many "elastic:" log lines as elastic.json has events.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp

DATA='{"dataset":"synthetic","synthetic":{"train":256,"test":128,"classes":4,"channels":1,"size":12}}'
MODEL='{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
        "stages":[{"width":8,"mids":[8,8]},{"width":16,"mids":[16,16]}]}'

# dna_spec NAME RATIO
dna_spec() {
    cat <<JSON
{"name":"$1","type":"adapt","seed":3,"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},
 "adapt":{"method":"dna","target_ratio":$2,"warmup_epochs":1,"search_epochs":3,
          "search":{"batch_size":32},"calib_batches":2,
          "arch":{"lr":20,"init":"existing"},
          "elastic":{"check_every":2,"settle_steps":2}}}
JSON
}
dna_spec it-shrink 0.4 > "$TMP/shrink.json"
dna_spec it-grow 1.3 > "$TMP/grow.json"
cat > "$TMP/compound.json" <<JSON
{"name":"it-compound","type":"adapt","seed":3,"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},
 "adapt":{"method":"compound","target_ratio":1.3}}
JSON

# summary_field LOG NAME: a number from the "finished" summary line
summary_field() {
    grep '"event":"finished"' "$1" | sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p"
}

# check_run DIR LOG SIDE(below|above) [DNA]: artifacts, band, side, eval == reported
check_run() {
    dir=$1
    log=$2
    for f in architecture.json model.safetensors report.json; do
        [ -s "$dir/$f" ] || fail "$dir/$f missing"
    done
    mflops=$(summary_field "$log" mflops)
    target=$(summary_field "$log" target_mflops)
    reported=$(summary_field "$log" test_top1)
    [ -n "$mflops" ] && [ -n "$target" ] && [ -n "$reported" ] ||
        fail "$log: no summary with mflops, target_mflops and test_top1"
    awk -v m="$mflops" -v t="$target" 'BEGIN { exit !(m <= 1.01 * t && m >= 0.99 * t) }' ||
        fail "$dir: $mflops MFLOPs for a target of $target"
    before=$(jq .before.mflops "$dir/report.json")
    if [ "$3" = below ]; then
        awk -v m="$mflops" -v b="$before" 'BEGIN { exit !(m < b) }' ||
            fail "$dir: $mflops MFLOPs is not below the original $before"
    else
        awk -v m="$mflops" -v b="$before" 'BEGIN { exit !(m > b) }' ||
            fail "$dir: $mflops MFLOPs is not above the original $before"
    fi
    got=$("$WORKER" eval --model "$dir/architecture.json" --weights "$dir/model.safetensors" \
        --data "$DATA") || fail "eval of $dir failed"
    top1=$(echo "$got" | sed 's/.*"top1":\([0-9.e-]*\),.*/\1/')
    awk -v a="$top1" -v b="$reported" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
        fail "$dir: eval says $top1, the job reported $reported"
    if [ "${4:-}" = dna ]; then
        [ -s "$dir/elastic.json" ] || fail "$dir/elastic.json missing"
        n=$(jq '.events | length' "$dir/elastic.json")
        lines=$(grep -c 'elastic: epoch' "$log" || :)
        [ "$n" = "$lines" ] || fail "$dir: $n events in elastic.json, $lines log lines"
        [ "$n" -gt 0 ] || fail "$dir: no elastic event"
    fi
}

"$WORKER" run "$TMP/shrink.json" --out "$TMP/s1" --no-progress > "$TMP/s1.log" 2>&1 ||
    fail "shrink run: $(tail -3 "$TMP/s1.log")"
check_run "$TMP/s1" "$TMP/s1.log" below dna
ok "dna shrink job: below the original, in the band, elastic events logged, eval == reported"

"$WORKER" run "$TMP/grow.json" --out "$TMP/g1" --no-progress > "$TMP/g1.log" 2>&1 ||
    fail "grow run: $(tail -3 "$TMP/g1.log")"
check_run "$TMP/g1" "$TMP/g1.log" above dna
ok "dna grow job: above the original, the same checks"

"$WORKER" run "$TMP/compound.json" --out "$TMP/c1" --no-progress > "$TMP/c1.log" 2>&1 ||
    fail "compound run: $(tail -3 "$TMP/c1.log")"
check_run "$TMP/c1" "$TMP/c1.log" above
ok "compound baseline job: the same checks"

kiln_mpirun -np 2 "$WORKER" run "$TMP/shrink.json" --out "$TMP/s2" --no-progress \
    > "$TMP/s2.log" 2>&1 || fail "2-rank dna run: $(tail -3 "$TMP/s2.log")"
grep -q "rank 1 of 2" "$TMP/s2.log" || fail "the 2-rank run did not start 2 ranks"
check_run "$TMP/s2" "$TMP/s2.log" below dna
ok "dna job on 2 ranks"

# a target the space cannot reach is refused with the field named
sed 's/"target_ratio":0.4/"target_ratio":0.001/' "$TMP/shrink.json" > "$TMP/bad.json"
if "$WORKER" run "$TMP/bad.json" --out "$TMP/bad" > "$TMP/bad.log" 2>&1; then
    fail "an unreachable target was accepted"
fi
grep -q "adapt.target" "$TMP/bad.log" || fail "the error does not name adapt.target_*: $(cat "$TMP/bad.log")"
ok "an unreachable target is refused naming the field"

# through the service: a 2-rank pool runs the grow job submitted over HTTP
. "$(dirname "$0")/service.sh"
start_server
start_pool adapt-pool 2
run_job "$TMP/grow.json" 240
id=$JOB
has_artifacts "$id" architecture.json model.safetensors report.json elastic.json search.json
for f in architecture.json model.safetensors elastic.json; do
    curl -sf "$URL/api/v1/jobs/$id/artifacts/$f" -o "$TMP/srv-$f" || die "download of $f"
done
"$WORKER" eval --model "$TMP/srv-architecture.json" --weights "$TMP/srv-model.safetensors" \
    --data "$DATA" > "$TMP/eval.json" || die "eval of the downloaded adapt result"
n=$(jq '.events | length' "$TMP/srv-elastic.json")
lines=$(curl -sf "$URL/api/v1/jobs/$id/logs?limit=10000" |
    jq '[.lines[] | select(.text | startswith("elastic: epoch"))] | length') || die "logs"
[ "$n" -gt 0 ] && [ "$n" = "$lines" ] ||
    die "$n events in elastic.json, $lines elastic log lines on the server"
ok "adapt job through the server: SUCCEEDED, gap-free metrics, $n elastic events streamed as log lines, artifacts download and evaluate"
