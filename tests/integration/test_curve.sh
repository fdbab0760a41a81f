#!/bin/sh
# test_curve.sh - the pool socket encrypted with CurveZMQ and pools known by their keys:
# kiln-server curve-keypair, a server with --curve-secret/--pool-keys (and HTTP tokens),
# a pool joining with its key under its name and running a job to SUCCEEDED; refused:
# a pool whose key is not listed, a pool with a listed key under another pool's id
# (it cannot speak for that pool), a pool with a token instead of a key, and bad key
# files, each with a message naming the problem.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

WORKER="$KILN_BIN/kiln-worker"

for k in server pool-a pool-b stranger; do
    "$SRV" curve-keypair >"$TMP/$k.key" || die "curve-keypair"
done
pub() { sed -n 's/^public //p' "$TMP/$1.key"; }
[ "$(pub server | wc -c)" -eq 41 ] || die "curve-keypair printed: $(cat "$TMP/server.key")"
[ "$(pub pool-a)" != "$(pub pool-b)" ] || die "two keypairs are equal"
printf '# pools that may join\npool-a %s\npool-b %s\n' "$(pub pool-a)" "$(pub pool-b)" >"$TMP/pool-keys"

# bad configurations stop the server at once, naming the problem
printf 'pool-a not-a-key\n' >"$TMP/bad-keys"
"$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad1" \
    --curve-secret "$TMP/server.key" --pool-keys "$TMP/bad-keys" >"$TMP/bad1.log" 2>&1 &&
    die "a bad pool keys file was accepted"
grep -q "bad-keys line 1: the key is not 40 Z85 characters" "$TMP/bad1.log" ||
    die "bad pool keys: $(cat "$TMP/bad1.log")"
"$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad2" \
    --curve-secret "$TMP/server.key" >"$TMP/bad2.log" 2>&1 && die "--curve-secret alone was accepted"
grep -q -- "--curve-secret and --pool-keys go together" "$TMP/bad2.log" || die "$(cat "$TMP/bad2.log")"
echo "nothing here" >"$TMP/junk.key"
"$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad3" \
    --curve-secret "$TMP/junk.key" --pool-keys "$TMP/pool-keys" >"$TMP/bad3.log" 2>&1 &&
    die "a junk server key was accepted"
grep -q "junk.key holds no secret key" "$TMP/bad3.log" || die "junk key: $(cat "$TMP/bad3.log")"
status=0
"$WORKER" --connect tcp://127.0.0.1:1 --pool-id pool-a --server-key short \
    --curve-secret "$TMP/pool-a.key" >"$TMP/bad4.log" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q -- "--server-key is not 40 Z85" "$TMP/bad4.log" ||
    die "a short server key: status $status, $(cat "$TMP/bad4.log")"
ok "refused: a bad pool keys file, --curve-secret alone, a junk key file, a short --server-key"

make_tokens
tok=$CI_TOKEN
start_server 0 'tcp://127.0.0.1:*' --tokens "$TMP/tokens" \
    --curve-secret "$TMP/server.key" --pool-keys "$TMP/pool-keys"
grep -F "pool socket encrypted (CURVE); 2 pool key(s)" "$TMP/server.log" |
    grep -qF -- "--server-key $(pub server)" || die "the server does not give its public key"
AUTH="Authorization: Bearer $tok"

joined() { # POOL_ID: whether the server lists it
    curl -s --max-time 10 -H "$AUTH" "$URL/api/v1/workers" |
        jq -e --arg id "$1" '[.workers[]?, .[]?] | map(select(type == "object" and .id == $id)) | length > 0' \
            >/dev/null 2>&1
}
start_curve_pool() { # NAME ID KEYFILE [extra]
    _name=$1 _id=$2 _key=$3
    shift 3
    OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np 1 "$WORKER" --connect "$EP" \
        --pool-id "$_id" --work-dir "$TMP/work-$_name" --server-key "$(pub server)" \
        --curve-secret "$_key" "$@" >>"$TMP/pool-$_name.log" 2>&1 &
    POOLS="$POOLS $!"
}

# pool-b's key under pool-a's id, pool-a away: every message it sends is dropped, naming both
start_curve_pool b pool-a "$TMP/pool-b.key"
imp=$!
n=0
until grep -q "pool id 'pool-a' is not the name of the key it joined with ('pool-b')" "$TMP/server.log"; do
    n=$((n + 1))
    [ "$n" -gt 150 ] && die "pool-b speaking as pool-a was not refused"
    sleep 0.1
done
joined pool-a && die "pool-b joined as pool-a"
kill9_pool "$imp"
ok "pool-b's key speaking as pool-a: every message dropped, pool-a not joined"

# pool-a joins with its key under its name
start_curve_pool a pool-a "$TMP/pool-a.key"
n=0
until joined pool-a; do
    n=$((n + 1))
    [ "$n" -gt 150 ] && die "pool-a did not join with its key"
    sleep 0.1
done
ok "pool-a joined over CURVE under the name its key has"

# a stranger's key (by the ZAP handler) and a token instead of a key (by ZeroMQ: the
# mechanisms differ) are refused at the handshake; pool-b's key
# under pool-a's live id does not take pool-a's connection over
start_curve_pool s stranger "$TMP/stranger.key"
OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np 1 "$WORKER" --connect "$EP" \
    --pool-id plain --work-dir "$TMP/work-p" --token "$GPU_TOKEN" \
    >>"$TMP/pool-plain.log" 2>&1 &
POOLS="$POOLS $!"
start_curve_pool b2 pool-a "$TMP/pool-b.key"
n=0
until grep -q "refused: its key .* is not in the pool keys file" "$TMP/server.log" &&
    grep -q "nothing from" "$TMP/pool-plain.log"; do
    n=$((n + 1))
    [ "$n" -gt 150 ] && die "the refusals were not logged"
    sleep 0.1
done
joined stranger && die "a pool with an unknown key joined"
joined plain && die "a pool with a token joined a CURVE server"
ok "refused: an unknown key and a PLAIN token"

# a job runs on pool-a (the impostor cannot take or finish it)
cat >"$TMP/job.json" <<'JOB'
{"name": "curve", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": {"dataset": "synthetic", "synthetic": {"train": 256, "test": 64}},
 "optim": {"epochs": 1, "batch_size": 32}, "resources": {"ranks": 1}}
JOB
id=$(curl -s --max-time 10 -H "$AUTH" -H 'Content-Type: application/json' \
    --data-binary @"$TMP/job.json" "$URL/api/v1/jobs" | jq -r .id)
[ -n "$id" ] && [ "$id" != null ] || die "submit failed"
n=0
while :; do
    st=$(curl -s --max-time 10 -H "$AUTH" "$URL/api/v1/jobs/$id" | jq -r .state)
    case "$st" in SUCCEEDED) break ;; FAILED | CANCELLED) die "job $id is $st" ;; esac
    n=$((n + 1))
    [ "$n" -gt 1200 ] && die "job $id is $st after 120 s"
    sleep 0.1
done
grep -q "nothing from" "$TMP/pool-a.log" && die "pool-a lost its connection to an impostor"
ok "a job ran to SUCCEEDED on pool-a over the encrypted pool socket, its connection its own"
echo "test_curve: ok"
