# test_imagefolder.sh - training on users' images: an ImageFolder of JPEGs
# (and some PNGs) made from Fashion-MNIST, upscaled to 32x32 RGB, with three
# truncated files among the training images.
#
# Through `kiln-worker run`: the job learns (test top-1 well above chance),
# writes model.safetensors and model.ema.safetensors, reports the bad files
# in its metrics, and `kiln-worker eval` on the folder gives the accuracy
# the job reported; with data.image.on_bad_file "fail" it stops naming a bad
# file; on 2 ranks it runs and checks the data fingerprint. Through the
# server: a 2-rank pool runs the job to SUCCEEDED with gap-free metrics,
# data/bad_files among them.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp

"$KILN_BIN/mkimgfolder" /usr/share/datasets/fashion-mnist "$TMP/fm" --train 2000 --test 400 \
    --size 32 --bad 3 --png || fail "mkimgfolder"

MODEL='{"arch":"resnet_cifar","depth":8,"num_classes":10}'
DATA="{\"dataset\":\"folder\",\"root\":\"$TMP/fm\",\"image\":{\"size\":32,\"workers\":2,
       \"train_transform\":{\"scale\":[0.5,1.0],\"randaugment\":[1,5],\"random_erasing\":0.1}},
       \"mix\":{\"mixup\":0.2,\"cutmix\":1.0,\"prob\":0.5}}"
cat > "$TMP/job.json" <<JSON
{"name":"it-folder","seed":5,"model":$MODEL,"data":$DATA,
 "optim":{"lr":0.1,"batch_size":64,"epochs":2,"ema":0.99}}
JSON

summary_field() {
    grep '"event":"finished"' "$1" | sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p"
}

"$WORKER" run "$TMP/job.json" --out "$TMP/r1" --no-progress > "$TMP/r1.log" 2>&1 ||
    fail "folder run: $(tail -3 "$TMP/r1.log")"
for f in model.safetensors model.ema.safetensors; do
    [ -s "$TMP/r1/$f" ] || fail "$f missing"
done
top1=$(summary_field "$TMP/r1.log" test_top1)
awk -v a="$top1" 'BEGIN { exit !(a > 0.4) }' || fail "test top-1 $top1 after 2 epochs"
grep -q '"name":"test/top1_ema"' "$TMP/r1.log" || fail "no EMA evaluation"
bad=$(grep '"name":"data/bad_files"' "$TMP/r1.log" | tail -1 | sed 's/.*"value":\([0-9]*\).*/\1/')
[ "${bad:-0}" -ge 3 ] || fail "data/bad_files is ${bad:-absent}, 3 truncated files were met"
grep -q "skipping a bad image file: .*bad00" "$TMP/r1.log" || fail "no warning naming a bad file"
got=$("$WORKER" eval --model "{\"arch\":\"resnet_cifar\",\"depth\":8,\"num_classes\":10,\"image_size\":32,\"in_channels\":3}" \
    --weights "$TMP/r1/model.safetensors" --data "$DATA") || fail "eval on the folder"
e=$(echo "$got" | sed 's/.*"top1":\([0-9.e-]*\),.*/\1/')
awk -v a="$e" -v b="$top1" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
    fail "eval says $e, the job reported $top1"
ok "folder job: top-1 $top1, EMA evaluated and saved, $bad bad-file hits counted, eval == reported"

sed 's/"workers":2/"workers":2,"on_bad_file":"fail"/' "$TMP/job.json" > "$TMP/fail.json"
if "$WORKER" run "$TMP/fail.json" --out "$TMP/f1" --no-progress > "$TMP/f1.log" 2>&1; then
    fail "a bad file did not stop an on_bad_file=fail job"
fi
grep -q "bad00.*on_bad_file" "$TMP/f1.log" || fail "the error does not name the file: $(tail -2 "$TMP/f1.log")"
ok "on_bad_file fail: the job stops naming the file"

kiln_mpirun -np 2 "$WORKER" run "$TMP/job.json" --out "$TMP/r2" --no-progress \
    > "$TMP/r2.log" 2>&1 || fail "2-rank folder run: $(tail -3 "$TMP/r2.log")"
t2=$(summary_field "$TMP/r2.log" test_top1)
awk -v a="$t2" 'BEGIN { exit !(a > 0.4) }' || fail "2-rank test top-1 $t2"
ok "folder job on 2 ranks: top-1 $t2"

. "$(dirname "$0")/service.sh"
start_server
start_pool folder-pool 2
run_job "$TMP/job.json" 240
id=$JOB
n=$(curl -sf "$URL/api/v1/jobs/$id/metrics?names=data/bad_files&limit=100000" |
    jq '[.. | objects | select(.name? == "data/bad_files")] | length') || die "metrics"
[ "$n" -gt 0 ] || die "no data/bad_files metric on the server"
has_artifacts "$id" model.safetensors model.ema.safetensors
ok "folder job through the server: SUCCEEDED, gap-free metrics, data/bad_files reported, EMA weights among the artifacts"
