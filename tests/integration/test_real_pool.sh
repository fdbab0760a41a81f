#!/bin/sh
# test_real_pool.sh - kiln-server with a REAL 2-rank pool (mpirun -np 2 kiln-worker --connect).
#
# Checks: a small train job submitted with curl and one with the CLI reach
# SUCCEEDED; metrics read through after_seq are seq 1..n each once; the
# artifact downloads and `kiln-worker eval` on it reproduces the test
# accuracy the job reported; cancel of a running job ends CANCELLED.
set -u
bin=${KILN_BIN:?KILN_BIN must name the folder of the built programs}
work=$(mktemp -d /tmp/kiln-real-XXXXXX)
server=""
pool=""
fail() {
    echo "FAIL: $*" >&2
    tail -20 "$work/server.log" "$work/pool.log" >&2 2>/dev/null
    cleanup
    exit 1
}
cleanup() {
    [ -n "$pool" ] && kill -TERM "$pool" 2>/dev/null && wait "$pool" 2>/dev/null
    [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1; }

"$bin/kiln-server" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$work/data" \
    --port-file "$work/ports" >"$work/server.log" 2>&1 &
server=$!
i=0
while [ ! -s "$work/ports" ]; do
    i=$((i + 1)); [ "$i" -gt 100 ] && fail "kiln-server did not start"; sleep 0.05
done
url="http://127.0.0.1:$(cut -d' ' -f1 "$work/ports")"
ep=$(cut -d' ' -f2 "$work/ports")
export KILN_URL="$url"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "$bin/kiln-worker" --connect "$ep" \
    --pool-id real-pool >"$work/pool.log" 2>&1 &
pool=$!

data='{"dataset": "fashion-mnist", "train_limit": 512, "test_limit": 256}'
cat >"$work/job.json" <<EOF
{"name": "real-small", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": $data, "optim": {"epochs": 1, "batch_size": 64}, "resources": {"ranks": 2}}
EOF
id1=$(curl -s -H 'Content-Type: application/json' --data-binary @"$work/job.json" \
    "$url/api/v1/jobs" | json_field id)
[ -n "$id1" ] || fail "curl submit"
id2=$("$bin/kiln" submit -q "$work/job.json") || fail "kiln submit"
"$bin/kiln" watch "$id1" >/dev/null || fail "job $id1 did not succeed"
"$bin/kiln" watch "$id2" >/dev/null || fail "job $id2 did not succeed"

after=0
: >"$work/seqs"
while :; do
    page=$(curl -s "$url/api/v1/jobs/$id1/metrics?after_seq=$after&limit=50")
    seqs=$(echo "$page" | grep -o '"seq":[0-9]*' | cut -d: -f2)
    [ -z "$seqs" ] && break
    echo "$seqs" >>"$work/seqs"
    after=$(echo "$page" | grep -o '"next_seq":[0-9]*' | cut -d: -f2)
done
[ -s "$work/seqs" ] || fail "no metrics"
awk 'NR != $1 { exit 1 }' "$work/seqs" || fail "metric seqs are not 1..n"

"$bin/kiln" download "$id1" model.safetensors -o "$work/model.safetensors" >/dev/null ||
    fail "download"
reported=$(curl -s "$url/api/v1/jobs/$id1" | grep -o '"test_top1":[0-9.e-]*' | cut -d: -f2)
[ -n "$reported" ] || fail "the job reported no test_top1"
evaluated=$("$bin/kiln-worker" eval --weights "$work/model.safetensors" --data "$data" |
    grep -o '"top1":[0-9.e-]*' | cut -d: -f2)
awk -v a="$reported" -v b="$evaluated" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }' ||
    fail "eval gives top1 $evaluated, the job reported $reported"

sed 's/"epochs": 1/"epochs": 50/' "$work/job.json" >"$work/long.json"
long=$("$bin/kiln" submit -q "$work/long.json")
i=0
until curl -s "$url/api/v1/jobs/$long" | grep -q '"state":"RUNNING"'; do
    i=$((i + 1)); [ "$i" -gt 300 ] && fail "long job never ran"; sleep 0.1
done
"$bin/kiln" cancel "$long" >/dev/null || fail "cancel"
"$bin/kiln" watch "$long" >/dev/null && fail "a cancelled job reported success"
curl -s "$url/api/v1/jobs/$long" | grep -q '"state":"CANCELLED"' || fail "not CANCELLED"
cleanup
echo "real_pool: ok"
