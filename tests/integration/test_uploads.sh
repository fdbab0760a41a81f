#!/bin/sh
# test_uploads.sh - uploaded models and checkpoints for users, through kiln-server and a
# REAL pool (mpirun -np 2), with the kiln CLI.
#
#  1. kiln upload of a finished job's weights: 201 with the file's SHA-256,
#     its model config from the metadata; listed; the download is the same
#     bytes. The same weights without metadata (as PyTorch writes them) with
#     --model: accepted, the config given. A train job from {"model": ID}
#     (one step at lr 1e-9) scores the source job's accuracy.
#  2. Refused with 400 naming body: a truncated file, an empty file,
#     /etc/passwd; naming model: a config whose parameter count is not the
#     file's; 413 over --upload-limit. No file is left in <data>/uploads.
#  3. DELETE: 409 while a queued job starts from the model, 204 after, then 404.
#  4. GET /jobs/{id}/checkpoints/latest downloads the newest checkpoint
#     (404 for a job without one); init_from {"job", "checkpoint":"latest"}
#     and kiln resume start from it and succeed.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"
KILN="$KILN_BIN/kiln"

MODEL='{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
        "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]}'
DATA='{"dataset":"synthetic","synthetic":{"train":512,"test":256,"classes":4,"channels":1,"size":12}}'
spec() { # NAME INIT_FROM(JSON or "") OPTIM
    init=""
    [ -n "$2" ] && init="\"init_from\":$2,"
    echo "{\"name\":\"$1\",$init\"seed\":5,\"model\":$MODEL,\"data\":$DATA,\"optim\":$3,
 \"checkpoint\":{\"every_steps\":10},\"resources\":{\"ranks\":2}}"
}
TRAIN='{"lr":0.1,"batch_size":32,"epochs":2}'
TINY='{"lr":1e-9,"batch_size":32,"epochs":1,"max_steps":1,"warmup_epochs":0}'

start_server 0 'tcp://127.0.0.1:*' --upload-limit 100000
start_pool p1 2
export KILN_URL="$URL"

spec a "" "$TRAIN" >"$TMP/a.json"
A=$("$KILN" submit -q "$TMP/a.json")
"$KILN" watch "$A" >/dev/null || die "job A: $(jq_job "$A" .message)"
top_a=$(jq_job "$A" .result.test_top1)
"$KILN" download "$A" model.safetensors -o "$TMP/a.safetensors" >/dev/null || die "download"
sha_a=$(sha256sum "$TMP/a.safetensors" | cut -d' ' -f1)

# 1. uploads
"$KILN" --json upload "$TMP/a.safetensors" --name from-a >"$TMP/up.json" || die "kiln upload"
M=$($JQ -r .id "$TMP/up.json")
[ "$($JQ -r .sha256 "$TMP/up.json")" = "$sha_a" ] || die "upload sha256: $(cat "$TMP/up.json")"
[ "$($JQ -r .model.arch "$TMP/up.json")" = resnet_cifar ] || die "no model config from metadata"
"$KILN" models | grep -q "^$M .*from-a" || die "kiln models does not list $M"
curl -s --max-time 10 -o "$TMP/m.safetensors" "$URL/api/v1/models/$M/file"
cmp -s "$TMP/m.safetensors" "$TMP/a.safetensors" || die "the model's download differs"
# the same tensors without metadata, as PyTorch's safetensors writes them
python3 - "$TMP/a.safetensors" "$TMP/torch.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
head.pop("__metadata__", None)
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
echo "$MODEL" >"$TMP/model.json"
T=$("$KILN" upload -q "$TMP/torch.safetensors" --model "$TMP/model.json") || die "upload --model"
[ "$(curl -s "$URL/api/v1/models/$T" | $JQ -r .model.stages[1].width)" = 16 ] ||
    die "the given model config was not kept"
spec from-m "{\"model\":\"$T\"}" "$TINY" >"$TMP/from-m.json"
B=$("$KILN" submit -q "$TMP/from-m.json")
"$KILN" watch "$B" >/dev/null || die "job from the uploaded model: $(jq_job "$B" .message)"
top_b=$(jq_job "$B" .result.test_top1)
awk -v a="$top_a" -v b="$top_b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.03) }' ||
    die "from the uploaded model: top-1 $top_b, the source job $top_a"
ok "upload (metadata / --model), list, download, a job from {model: ID} scores $top_b (source $top_a)"

# 2. refused uploads
upload_code() { # FILE [QUERY]
    curl -s --max-time 10 -o "$TMP/resp" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
        --data-binary @"$1" "$URL/api/v1/models$2"
}
head -c 20000 "$TMP/a.safetensors" >"$TMP/trunc.safetensors"
: >"$TMP/empty.safetensors"
for f in "$TMP/trunc.safetensors" "$TMP/empty.safetensors" /etc/passwd; do
    code=$(upload_code "$f" "")
    [ "$code" = 400 ] && [ "$($JQ -r '.error.details[0].field' "$TMP/resp")" = body ] ||
        die "upload of $f: HTTP $code $(cat "$TMP/resp")"
    echo "  $(basename "$f"): $($JQ -r .error.message "$TMP/resp")"
done
wrong=$(printf '%s' "$MODEL" | sed 's/"mids":\[16\]/"mids":[8]/' | $JQ -c . | $JQ -sRr @uri)
code=$(upload_code "$TMP/torch.safetensors" "?model=$wrong")
[ "$code" = 400 ] && [ "$($JQ -r '.error.details[0].field' "$TMP/resp")" = model ] ||
    die "upload with a config of another size: HTTP $code $(cat "$TMP/resp")"
echo "  wrong --model: $($JQ -r .error.message "$TMP/resp")"
head -c 150000 /dev/zero >"$TMP/big.safetensors"
[ "$(upload_code "$TMP/big.safetensors" "")" = 413 ] || die "an upload over the limit: $(cat "$TMP/resp")"
[ -z "$(ls "$TMP/data/uploads")" ] || die "files left in uploads: $(ls "$TMP/data/uploads")"
ok "400 naming body (truncated, empty, /etc/passwd) or model (wrong size); 413 over the limit"

# 3. delete
sed 's/"ranks":2/"ranks":8/' "$TMP/from-m.json" >"$TMP/never.json"
Q=$("$KILN" submit -q "$TMP/never.json") # no pool has 8 ranks: it stays QUEUED
code=$(curl -s --max-time 10 -o "$TMP/resp" -w '%{http_code}' -X DELETE "$URL/api/v1/models/$T")
[ "$code" = 409 ] || die "delete of a model a queued job uses: HTTP $code"
"$KILN" cancel "$Q" >/dev/null
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X DELETE "$URL/api/v1/models/$T")
[ "$code" = 204 ] || die "delete: HTTP $code"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/api/v1/models/$T")
[ "$code" = 404 ] || die "a deleted model: HTTP $code"
ok "delete: 409 while a queued job starts from it, then 204 and 404"

# 4. checkpoints
code=$(curl -s --max-time 10 -o "$TMP/ckpt.safetensors" -D "$TMP/hdr" -w '%{http_code}' \
    "$URL/api/v1/jobs/$A/checkpoints/latest")
[ "$code" = 200 ] || die "checkpoints/latest: HTTP $code"
grep -q '"train.step"' "$TMP/ckpt.safetensors" || die "the download is not a checkpoint"
grep -qi '^x-kiln-step: [1-9]' "$TMP/hdr" || die "no X-Kiln-Step header"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/api/v1/jobs/$Q/checkpoints/latest")
[ "$code" = 404 ] || die "checkpoints/latest of a job without one: HTTP $code"
spec from-ckpt "{\"job\":\"$A\",\"checkpoint\":\"latest\"}" "$TINY" >"$TMP/from-ckpt.json"
C=$("$KILN" submit -q "$TMP/from-ckpt.json")
"$KILN" watch "$C" >/dev/null || die "job from a checkpoint: $(jq_job "$C" .message)"
[ "$(jq_job "$C" .init_sha256)" = "$(sha256sum "$TMP/ckpt.safetensors" | cut -d' ' -f1)" ] ||
    die "job $C did not start from the latest checkpoint"
R=$("$KILN" resume -q "$A") || die "kiln resume"
"$KILN" watch "$R" >/dev/null || die "the resumed job: $(jq_job "$R" .message)"
[ "$(jq_job "$R" .init_from.checkpoint)" = latest ] || die "kiln resume did not use the checkpoint"
ok "checkpoints/latest downloads (404 without one); init_from a checkpoint and kiln resume succeed"
