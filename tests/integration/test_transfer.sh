#!/bin/sh
# test_transfer.sh - transfer learning through kiln-server and a REAL pool (mpirun -np 2).
#
# A ResNet trained on Fashion-MNIST (10 classes) is the init_from of a job
# on another 4-class task (synthetic 28x28 grey images) with
# num_classes 4 and optim.freeze naming every tensor but the head's:
#  - the job succeeds and its log says the head was freshly initialised
#    (10 -> 4 classes);
#  - in its model.safetensors every frozen parameter is bit-identical to
#    the source's, the head has 4 rows and differs;
#  - it learns the new task (top-1 above chance);
#  - a freeze prefix that names no tensor ends the job FAILED naming
#    optim.freeze[0]; a prune job from weights with another num_classes is
#    refused at submit (only train jobs replace the head).
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

NET='"arch":"resnet_cifar","stem":8,"stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]'
start_server
start_pool p1 2

cat >"$TMP/src.json" <<EOF
{"name":"fmnist-src","seed":1,"model":{$NET},
 "data":{"dataset":"fashion-mnist","train_limit":1024,"test_limit":256},
 "optim":{"lr":0.1,"batch_size":64,"epochs":1},"resources":{"ranks":2}}
EOF
S=$(submit "$TMP/src.json")
wait_terminal "$S" 120
[ "$(jq_job "$S" .state)" = SUCCEEDED ] || die "source job: $(jq_job "$S" .message)"
curl -s --max-time 10 -o "$TMP/src.safetensors" "$URL/api/v1/jobs/$S/artifacts/model.safetensors"
head=$(python3 - "$TMP/src.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
print(" ".join(k for k, v in h.items() if k != "__metadata__" and v["shape"][:1] == [10]))
PY
)
[ -n "$head" ] || die "no tensor with 10 rows in the source weights"
prefix=${head%%.*}
frozen=$(python3 - "$TMP/src.safetensors" "$prefix" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
tops = sorted({k.split(".")[0] for k in h if k != "__metadata__" and not k.startswith(sys.argv[2] + ".")})
print(json.dumps(tops))
PY
)

tgt() { # NAME FREEZE-JSON
    cat <<EOF
{"name":"$1","seed":2,"init_from":{"job":"$S"},"model":{$NET,"num_classes":4},
 "data":{"dataset":"synthetic","synthetic":{"train":512,"test":256,"classes":4,"channels":1,"size":28}},
 "optim":{"lr":0.1,"batch_size":64,"epochs":6,"freeze":$2},"resources":{"ranks":2}}
EOF
}
tgt transfer "$frozen" >"$TMP/tgt.json"
T=$(submit "$TMP/tgt.json")
[ -n "$T" ] && [ "$T" != null ] || die "transfer job not accepted"
wait_terminal "$T" 120
[ "$(jq_job "$T" .state)" = SUCCEEDED ] || die "transfer job: $(jq_job "$T" .message)"
curl -s --max-time 10 "$URL/api/v1/jobs/$T/logs?limit=200" >"$TMP/logs.json"
grep -q "freshly initialised: $prefix.weight (10 -> 4 classes)" "$TMP/logs.json" ||
    die "the log does not say the head was initialised afresh: $($JQ -r '.lines[].text' "$TMP/logs.json" | head -5)"
curl -s --max-time 10 -o "$TMP/tgt.safetensors" "$URL/api/v1/jobs/$T/artifacts/model.safetensors"
python3 - "$TMP/src.safetensors" "$TMP/tgt.safetensors" "$prefix" <<'PY' || die "frozen tensors moved"
import json, struct, sys
def load(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
a, b, head = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3] + "."
bad = []
for k, (shape, data) in a.items():
    if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
        continue
    if k.startswith(head):
        if b[k][0][0] != 4 or b[k][0][1:] != shape[1:]:
            bad.append(f"{k}: shape {b[k][0]}")
    elif b[k][1] != data:
        bad.append(f"{k} changed")
print("\n".join(bad) or f"{len(a)} tensors: frozen ones identical, head 4 rows")
sys.exit(1 if bad else 0)
PY
top=$(jq_job "$T" .result.test_top1)
awk -v t="$top" 'BEGIN { exit !(t > 0.35) }' || die "transfer job top-1 $top (chance 0.25)"
ok "Fashion-MNIST -> 4-class task: head afresh (logged), frozen tensors identical, top-1 $top"

tgt bad-freeze '["nosuchlayer"]' >"$TMP/bad.json"
B=$(submit "$TMP/bad.json")
wait_terminal "$B" 60
[ "$(jq_job "$B" .state)" = FAILED ] || die "bad freeze: $(jq_job "$B" .state)"
case "$(jq_job "$B" .message)" in *"optim.freeze[0]"*nosuchlayer*) ;;
*) die "bad freeze message: $(jq_job "$B" .message)" ;; esac
cat >"$TMP/prune.json" <<EOF
{"type":"prune","init_from":{"job":"$S"},"model":{$NET,"num_classes":4},
 "data":{"dataset":"synthetic","synthetic":{"train":512,"test":256,"classes":4,"channels":1,"size":28}},
 "optim":{"epochs":1,"batch_size":64},"prune":{"method":"dmcp","target_ratio":0.6}}
EOF
code=$(curl -s --max-time 10 -o "$TMP/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$TMP/prune.json" "$URL/api/v1/jobs")
[ "$code" = 400 ] && grep -q "classes" "$TMP/resp" || die "prune from 10 classes to 4: HTTP $code $(cat "$TMP/resp")"
ok "a freeze prefix naming no tensor FAILS naming optim.freeze[0]; prune with another head: 400"
