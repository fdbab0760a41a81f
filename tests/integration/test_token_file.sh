#!/bin/sh
# test_token_file.sh - tokens out of ps: the CLI and kiln-worker read their
# token from a file (--token-file or KILN_TOKEN_FILE); the processes' command
# lines do not hold it; a pool joins and runs a job with it; an empty file or
# one with two words is refused, naming the file.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

make_tokens
start_server 0 'tcp://127.0.0.1:*' --tokens "$TMP/tokens"

"$CLI" --url "$URL" workers >/dev/null 2>&1 && die "the CLI got in without a token"
"$CLI" --url "$URL" --token-file "$TMP/ci.token" workers >/dev/null || die "--token-file refused"
KILN_TOKEN_FILE="$TMP/ci.token" "$CLI" --url "$URL" workers >/dev/null || die "KILN_TOKEN_FILE refused"
: >"$TMP/empty.token"
out=$("$CLI" --url "$URL" --token-file "$TMP/empty.token" workers 2>&1) && die "an empty token file was accepted"
echo "$out" | grep -q "empty.token holds no token" || die "empty file: $out"
echo "two words" >"$TMP/two.token"
out=$("$CLI" --url "$URL" --token-file "$TMP/two.token" workers 2>&1) && die "two words were accepted"
echo "$out" | grep -q "two.token: a token has no spaces" || die "two words: $out"
ok "the CLI reads its token from --token-file and KILN_TOKEN_FILE; bad files are named"

OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np 1 "$KILN_BIN/kiln-worker" \
    --connect "$EP" --pool-id tf-pool --work-dir "$TMP/work" --token-file "$TMP/gpu.token" \
    >>"$TMP/pool-tf.log" 2>&1 &
POOLS="$POOLS $!"
cat >"$TMP/job.json" <<'JOB'
{"name": "tf", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": {"dataset": "synthetic", "synthetic": {"train": 256, "test": 64}},
 "optim": {"epochs": 1, "batch_size": 32}, "resources": {"ranks": 1}}
JOB
id=$("$CLI" --url "$URL" --token-file "$TMP/ci.token" submit -q "$TMP/job.json") || die "submit"
n=0
until [ "$("$CLI" --url "$URL" --token-file "$TMP/ci.token" --json get "$id" | $JQ -r .state)" = SUCCEEDED ]; do
    n=$((n + 1))
    [ "$n" -gt 600 ] && die "job $id did not succeed"
    sleep 0.2
done
secret=$(cat "$TMP/gpu.token")
pids=$(pgrep -f "kiln-worker --connect $EP")
[ -n "$pids" ] || die "no kiln-worker process found"
for p in $pids; do
    tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "$secret" && die "the pool token is on a command line"
done
ok "kiln-worker --token-file: the pool joined and ran a job, its token on no command line"

# values too long for the pool are refused naming them, never cut
long=$(head -c 5000 /dev/zero | tr '\0' a)
out=$(KILN_TOKEN=$long timeout 30 "$KILN_BIN/kiln-worker" --connect "$EP" 2>&1) &&
    die "a 5000-byte KILN_TOKEN was accepted"
echo "$out" | grep -q "KILN_TOKEN is 5000 bytes long" || die "KILN_TOKEN too long: $out"
out=$(timeout 30 "$KILN_BIN/kiln-worker" --connect "$EP" --work-dir "$TMP/$long" 2>&1) &&
    die "a 5000-byte --work-dir was accepted"
echo "$out" | grep -q -- "--work-dir is .* bytes long" || die "--work-dir too long: $out"
ok "a token or work folder longer than the pool takes is refused naming it"
echo "test_token_file: ok"
