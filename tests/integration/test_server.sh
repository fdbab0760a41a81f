#!/bin/sh
# test_server.sh - kiln-server end to end with curl and the kiln CLI, on loopback, free ports.
#
# The pools are kiln-testpool, a scripted TEST DOUBLE that speaks the real
# protocol (worker/link.c) but trains nothing; test_real_pool.sh and the
# fault tests run real pools. Covers: 400 naming the
# field, submit with curl and with the CLI, SUCCEEDED, gap-free metrics
# through after_seq, artifact download (whole and Range), cancel of a queued
# and of a running job, kill -9 of the server and restart with nothing lost,
# and a clean stop on SIGINT.
set -u
bin=${KILN_BIN:?KILN_BIN must name the folder of the built programs}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/kiln-it-XXXXXX)
server=""
pools=""
fail() {
    echo "FAIL: $*" >&2
    [ -f "$work/server.log" ] && tail -20 "$work/server.log" >&2
    cleanup
    exit 1
}
cleanup() {
    for p in $pools $server; do kill -TERM "$p" 2>/dev/null; done
    for p in $pools $server; do wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap 'cleanup; exit 1' INT TERM

start_server() { # [http-port broker-endpoint]
    rm -f "$work/ports"
    "$bin/kiln-server" --http "127.0.0.1:${1:-0}" --broker "${2:-tcp://127.0.0.1:*}" \
        --data-dir "$work/data" --port-file "$work/ports" --heartbeat-ms 200 \
        >>"$work/server.log" 2>&1 &
    server=$!
    i=0
    while [ ! -s "$work/ports" ]; do
        i=$((i + 1))
        [ "$i" -gt 100 ] && fail "kiln-server did not start"
        sleep 0.05
    done
    port=$(cut -d' ' -f1 "$work/ports")
    ep=$(cut -d' ' -f2 "$work/ports")
    url="http://127.0.0.1:$port"
}

json_field() { # FIELD < json: the first string or number value of FIELD
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1
}

wait_state() { # ID STATE SECONDS
    i=0
    while :; do
        st=$(curl -s "$url/api/v1/jobs/$1" | json_field state)
        [ "$st" = "$2" ] && return 0
        i=$((i + 1))
        [ "$i" -gt $(($3 * 10)) ] && fail "job $1 is $st, expected $2"
        sleep 0.1
    done
}

start_server
export KILN_URL="$url"
for name in pool-a pool-b; do
    "$bin/kiln-testpool" --connect "$ep" --pool-id "$name" --ranks 2 --step-ms 10 --ckpt-every 10 \
        --heartbeat-ms 200 >>"$work/pools.log" 2>&1 &
    pools="$pools $!"
done

cat >"$work/job.json" <<'EOF'
{"name": "it-small", "model": {"arch": "resnet_cifar", "depth": 20, "widths": [16, 32, 64]},
 "data": {"dataset": "fashion-mnist"}, "optim": {"epochs": 1, "max_steps": 40},
 "resources": {"ranks": 2}}
EOF
sed 's/"max_steps": 40/"max_steps": 100000/; s/it-small/it-long/' "$work/job.json" >"$work/long.json"
sed 's/"ranks": 2/"ranks": 64/; s/it-small/it-huge/' "$work/job.json" >"$work/huge.json"

# a refused connection or a bad URL: one clear line, exit 1
err=$("$bin/kiln" --url http://127.0.0.1:1 list 2>&1) && fail "kiln against a closed port succeeded"
[ "$(echo "$err" | wc -l)" -eq 1 ] || fail "more than one line: $err"
case "$err" in *"cannot connect to http://127.0.0.1:1"*) ;; *) fail "refused: $err" ;; esac
err=$("$bin/kiln" --url localhost:8080 list 2>&1) && fail "kiln with a bad URL succeeded"
case "$err" in *"not a server URL"*) ;; *) fail "bad URL: $err" ;; esac

# 400 names the field
out=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' \
    -d '{"model": {"arch": "resnet_cifar"}, "optim": {"lr": -1}}' "$url/api/v1/jobs")
case "$out" in *'"field":"optim.lr"'*' 400') ;; *) fail "invalid spec: $out" ;; esac

# submit with curl and with the CLI; both succeed
id1=$(curl -s -H 'Content-Type: application/json' --data-binary @"$work/job.json" \
    "$url/api/v1/jobs" | json_field id)
[ -n "$id1" ] || fail "curl submit gave no id"
id2=$("$bin/kiln" submit -q "$work/job.json") || fail "kiln submit"
"$bin/kiln" watch "$id2" >"$work/watch.txt" || fail "kiln watch $id2: $(tail -2 "$work/watch.txt")"
grep -q "SUCCEEDED" "$work/watch.txt" || fail "watch output"
wait_state "$id1" SUCCEEDED 10

# metrics through after_seq, 7 at a time: seq 1..n, each once
after=0
: >"$work/seqs"
while :; do
    page=$(curl -s "$url/api/v1/jobs/$id1/metrics?after_seq=$after&limit=7")
    seqs=$(echo "$page" | grep -o '"seq":[0-9]*' | cut -d: -f2)
    [ -z "$seqs" ] && break
    echo "$seqs" >>"$work/seqs"
    after=$(echo "$page" | grep -o '"next_seq":[0-9]*' | cut -d: -f2)
done
n=$(wc -l <"$work/seqs")
[ "$n" -eq 80 ] || fail "expected 80 metric points, got $n"
awk 'NR != $1 { print "gap or duplicate at line " NR ": " $1; exit 1 }' "$work/seqs" ||
    fail "metric seqs are not 1..n"
"$bin/kiln" metrics "$id2" | awk 'NR > 1 && $1 != NR - 1 { exit 1 }' || fail "CLI metrics seqs"

# the artifact, whole (CLI) and a range (curl)
"$bin/kiln" download "$id1" model.safetensors -o "$work/model.safetensors" >/dev/null ||
    fail "kiln download"
size=$(wc -c <"$work/model.safetensors")
[ "$size" -gt 16 ] || fail "artifact is $size bytes"
curl -s -H 'Range: bytes=8-15' "$url/api/v1/jobs/$id1/artifacts/model.safetensors" >"$work/part"
dd if="$work/model.safetensors" of="$work/part.want" bs=1 skip=8 count=8 2>/dev/null
cmp -s "$work/part" "$work/part.want" || fail "Range bytes differ"

# cancel: a queued job (fits no pool) and a running one
huge=$("$bin/kiln" submit -q "$work/huge.json")
"$bin/kiln" cancel "$huge" >/dev/null || fail "cancel queued"
wait_state "$huge" CANCELLED 2
long=$("$bin/kiln" submit -q "$work/long.json")
wait_state "$long" RUNNING 5
"$bin/kiln" cancel "$long" >/dev/null || fail "cancel running"
wait_state "$long" CANCELLED 5
"$bin/kiln" cancel "$long" 2>"$work/err" && fail "cancelling a cancelled job succeeded"
grep -q CONFLICT "$work/err" || fail "second cancel: $(cat "$work/err")"

# kill -9 of the server mid-job: after a restart on the same ports nothing is lost
long2=$("$bin/kiln" submit -q "$work/long.json")
queued=$("$bin/kiln" submit -q "$work/huge.json")
wait_state "$long2" RUNNING 5
kill -9 "$server"
wait "$server" 2>/dev/null
start_server "$port" "$ep"
wait_state "$queued" QUEUED 2
wait_state "$long2" RUNNING 5
sleep 1.5 # the pools reconnect (liveness 5 x 200 ms) and go on reporting
before=$(curl -s "$url/api/v1/jobs/$long2" | json_field metric_count)
sleep 0.5
after=$(curl -s "$url/api/v1/jobs/$long2" | json_field metric_count)
[ "$after" -gt "$before" ] || fail "job $long2 did not go on after the restart ($before -> $after)"
st=$(curl -s "$url/api/v1/jobs/$long2" | json_field state)
[ "$st" = RUNNING ] || fail "job $long2 is $st after the restart"
"$bin/kiln" cancel "$long2" >/dev/null
wait_state "$long2" CANCELLED 5
"$bin/kiln" metrics "$long2" | awk 'NR > 1 && $1 != NR - 1 { exit 1 }' ||
    fail "metric seqs have a gap or a duplicate across the restart"
"$bin/kiln" workers | grep -q pool-a || fail "pool-a did not reconnect"

# group commit: 40 POSTs at once, each answered after its job is stored: 30 new jobs
# (201, a Location of their own id), 10 with one idempotency key (the one job it made)
sed 's/"ranks": 2/"ranks": 64/; s/it-small/it-burst/' "$work/job.json" >"$work/burst.json"
i=0
while [ "$i" -lt 40 ]; do
    key=""
    [ "$i" -ge 30 ] && key="Idempotency-Key: burst-key"
    curl -s -D "$work/burst-h$i" -o "$work/burst-b$i" -H 'Content-Type: application/json' \
        ${key:+-H "$key"} --data-binary @"$work/burst.json" "$url/api/v1/jobs" &
    curls="${curls:-} $!"
    i=$((i + 1))
done
for p in $curls; do wait "$p"; done
i=0
created=0
: >"$work/burst-ids"
while [ "$i" -lt 40 ]; do
    code=$(head -1 "$work/burst-h$i" | cut -d' ' -f2)
    bid=$(json_field id <"$work/burst-b$i")
    grep -qi "^Location: /api/v1/jobs/$bid" "$work/burst-h$i" || fail "POST $i: no Location of $bid"
    if [ "$i" -lt 30 ]; then
        [ "$code" = 201 ] || fail "POST $i answered $code"
        echo "$bid" >>"$work/burst-ids"
    else
        case "$code" in 200) ;; 201) created=$((created + 1)) ;;
        *) fail "POST $i (idempotent) answered $code" ;; esac
        echo "$bid" >>"$work/burst-key"
    fi
    [ "$(curl -s "$url/api/v1/jobs/$bid" | json_field state)" = QUEUED ] || fail "job $bid not stored"
    i=$((i + 1))
done
[ "$(sort -u "$work/burst-ids" | wc -l)" -eq 30 ] || fail "30 new jobs do not have 30 ids"
[ "$(sort -u "$work/burst-key" | wc -l)" -eq 1 ] || fail "one idempotency key gave several ids"
[ "$created" -eq 1 ] || fail "the idempotency key made $created jobs"

# a second server on the same data dir is refused: the store is this server's alone
"$bin/kiln-server" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$work/data" \
    >"$work/second.log" 2>&1 && fail "a second server on the same data dir started"
grep -q "locked" "$work/second.log" || fail "second server: $(tail -1 "$work/second.log")"

# SIGINT stops the server cleanly
kill -INT "$server"
wait "$server"
rc=$?
server=""
[ "$rc" -eq 0 ] || fail "kiln-server exited $rc on SIGINT"
grep -q "stopped cleanly" "$work/server.log" || fail "no clean stop"
grep -q "group commit: [0-9]* submissions stored in [0-9]* commits" "$work/server.log" ||
    fail "no group commit line"
cleanup
echo "test_server: ok"
