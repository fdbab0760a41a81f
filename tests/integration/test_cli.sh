#!/bin/sh
# test_cli.sh - the kiln CLI against a real kiln-server and kiln-testpool (the
# pool test double), and against sse_stub.mjs for a dropped stream.
#
# submit --dry-run stores nothing; submit --watch follows the event stream and
# exits 0 on SUCCEEDED; watch exits 1 when the job is CANCELLED; metrics --csv
# has a header and one row per point, the same points as the TSV; logs
# --follow prints every line once and ends with the job, and after a dropped
# connection resumes with Last-Event-ID; delete removes the job; every
# command's help lists its flags and an example; the bash completion
# completes commands and flags. Bounded: each wait has a limit.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"
KILN="$KILN_BIN/kiln"
start_server
"$KILN_BIN/kiln-testpool" --connect "$EP" --pool-id cli-pool --step-ms 20 \
    >"$TMP/pool-cli.log" 2>&1 &
POOLS="$POOLS $!"
export KILN_URL="$URL"

cat >"$TMP/job.json" <<'JSON'
{"name":"cli-small","model":{"arch":"resnet_cifar","depth":20,"widths":[16,32,64]},
 "data":{"dataset":"fashion-mnist"},"optim":{"epochs":1,"max_steps":15}}
JSON
sed 's/"max_steps":15/"max_steps":100000/; s/cli-small/cli-long/' "$TMP/job.json" >"$TMP/long.json"

# dry run: the numbers, nothing stored
out=$("$KILN" submit "$TMP/job.json" --dry-run) || die "submit --dry-run"
echo "$out" | grep -q "^valid: [0-9]* params" || die "dry run said: $out"
"$KILN" --json submit "$TMP/job.json" --dry-run | jq -e '.spec.optim.lr > 0' >/dev/null ||
    die "dry run --json has no spec with defaults"
[ "$(curl -s "$URL/api/v1/jobs" | jq '.jobs | length')" = 0 ] || die "a dry run stored a job"
ok "submit --dry-run: params and MFLOPs, the spec with defaults, nothing stored"

# submit --watch: follows the stream to SUCCEEDED, exit 0
timeout 60 "$KILN" submit "$TMP/job.json" --watch >"$TMP/watch.out" 2>&1 ||
    die "submit --watch failed: $(cat "$TMP/watch.out")"
grep -q "^job .* SUCCEEDED: COMPLETED" "$TMP/watch.out" || die "watch output: $(cat "$TMP/watch.out")"
grep -q "^SUCCEEDED: COMPLETED" "$TMP/watch.out" || die "watch showed no state change: $(cat -A "$TMP/watch.out")"
id=$(sed -n 's/^submitted job \([^ ]*\) .*/\1/p' "$TMP/watch.out")
[ -n "$id" ] || die "no job id in: $(cat "$TMP/watch.out")"
ok "submit --watch: the state changes from the event stream, exit 0 on SUCCEEDED"

# metrics --csv: header, one row per point, the TSV's points
"$KILN" metrics "$id" --csv >"$TMP/m.csv" || die "metrics --csv"
"$KILN" metrics "$id" >"$TMP/m.tsv" || die "metrics"
[ "$(head -1 "$TMP/m.csv")" = "seq,step,epoch,name,value,time" ] || die "csv header: $(head -1 "$TMP/m.csv")"
n=$(jq_job "$id" .metric_count)
[ "$(($(wc -l <"$TMP/m.csv") - 1))" = "$n" ] || die "csv rows != metric_count $n"
awk -F, 'NR > 1 && NF != 6 { exit 1 }' "$TMP/m.csv" || die "a csv row without 6 fields"
tail -n +2 "$TMP/m.csv" | awk -F, '{ printf "%s %s %s %.6g\n", $1, $2, $4, $5 }' >"$TMP/m1"
tail -n +2 "$TMP/m.tsv" | awk -F'\t' '{ printf "%s %s %s %.6g\n", $1, $2, $3, $4 }' >"$TMP/m2"
cmp -s "$TMP/m1" "$TMP/m2" || die "csv and tsv give other points: $(diff "$TMP/m1" "$TMP/m2" | head -3)"
ok "metrics --csv: header and $n rows, the same points as the TSV"
# --names (escaped into the query): only the named series, every point of them
"$KILN" metrics "$id" --names "train/loss,lr" >"$TMP/m-names.tsv" || die "metrics --names"
awk -F'\t' 'NR > 1 && $3 != "train/loss" && $3 != "lr" { exit 1 }' "$TMP/m-names.tsv" ||
    die "metrics --names gave other series: $(head -5 "$TMP/m-names.tsv")"
want=$(awk -F'\t' 'NR > 1 && ($3 == "train/loss" || $3 == "lr")' "$TMP/m.tsv" | wc -l)
[ "$want" -gt 0 ] && [ "$(($(wc -l <"$TMP/m-names.tsv") - 1))" = "$want" ] ||
    die "metrics --names: $(($(wc -l <"$TMP/m-names.tsv") - 1)) rows, want $want"
ok "metrics --names train/loss,lr: the $want points of those two series"

# watch of a cancelled job exits 1; logs --follow of a running job ends with it
long=$("$KILN" submit -q "$TMP/long.json") || die "submit -q"
wait_state "$long" RUNNING 20
timeout 60 "$KILN" watch "$long" >"$TMP/watch-long.out" 2>&1 &
watcher=$!
timeout 60 "$KILN" logs "$long" --follow >"$TMP/follow.out" 2>&1 &
follower=$!
sleep 0.5
"$KILN" cancel "$long" >/dev/null || die "cancel"
rc=0
wait "$watcher" || rc=$?
[ "$rc" = 1 ] || die "watch of a cancelled job exited $rc: $(cat "$TMP/watch-long.out")"
grep -q "CANCELLED" "$TMP/watch-long.out" || die "watch did not say CANCELLED"
wait "$follower" || die "logs --follow failed: $(cat "$TMP/follow.out")"
"$KILN" logs "$long" >"$TMP/all.out" || die "logs"
cmp -s "$TMP/follow.out" "$TMP/all.out" || die "logs --follow printed other lines than logs"
ok "watch exits 1 on CANCELLED; logs --follow printed every line once and ended with the job"

# a dropped stream resumes after the last line (sse_stub.mjs checks the id)
node "$(dirname "$0")/sse_stub.mjs" "$TMP/stub.port" "$TMP/stub.log" &
POOLS="$POOLS $!"
i=0
while [ ! -s "$TMP/stub.port" ]; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "sse_stub did not start"; sleep 0.05
done
timeout 20 "$KILN" --url "http://127.0.0.1:$(cat "$TMP/stub.port")" logs J --follow \
    >"$TMP/stub.out" 2>&1 || die "logs --follow across a drop: $(cat "$TMP/stub.out")"
[ "$(awk '{ print $3 }' "$TMP/stub.out" | tr '\n' ' ')" = "first second third " ] ||
    die "lines across the drop: $(cat "$TMP/stub.out")"
grep -q "stream 2 last-event-id=2" "$TMP/stub.log" || die "no resume: $(cat "$TMP/stub.log")"
ok "logs --follow: a dropped stream resumed with Last-Event-ID, each line once"

# delete
"$KILN" delete "$id" | grep -q "deleted" || die "delete"
if "$KILN" get "$id" >/dev/null 2>&1; then die "the deleted job is still there"; fi
ok "delete: the job is gone"

# an id goes into the URL percent-encoded: dot segments, a slash or a space in it
# reach no other resource
out=$("$KILN" delete "x/../$long" 2>&1) && die "delete of x/../$long succeeded: $out"
echo "$out" | grep -q "NOT_FOUND" || die "delete x/../ID: $out"
"$KILN" get "$long" >/dev/null || die "delete x/../$long deleted $long"
out=$("$KILN" get 'no such/job?' 2>&1) && die "get of a made-up id succeeded"
echo "$out" | grep -q "NOT_FOUND" || die "get 'no such/job?': $out"
ok "ids are escaped: delete x/../ID leaves ID, a space or slash in an id is a 404"

# help: every command lists its flags and an example; completion
for c in submit list get cancel delete watch metrics logs download workers health completion; do
    "$KILN" "$c" --help >"$TMP/help" || die "kiln $c --help"
    grep -q "^example: kiln" "$TMP/help" || die "kiln $c --help has no example"
    "$KILN" help "$c" | cmp -s - "$TMP/help" || die "kiln help $c differs from kiln $c --help"
done
for f in --dry-run --watch -q; do
    "$KILN" submit --help | grep -q -- "^  $f " || die "submit --help does not list $f"
done
"$KILN" --help | grep -q "completion" || die "kiln --help lists no completion"
"$KILN" health | grep -q ": ok$" || die "kiln health: the server's /healthz did not answer ok"
if "$KILN" --url http://127.0.0.1:1 health 2>/dev/null; then die "kiln health of no server said ok"; fi
"$KILN" completion bash >"$TMP/comp.bash" || die "completion bash"
bash -n "$TMP/comp.bash" || die "the completion script is not valid bash"
got=$(bash -c ". '$TMP/comp.bash'; COMP_WORDS=(kiln lo); COMP_CWORD=1; _kiln; echo \${COMPREPLY[*]}")
[ "$got" = "logs" ] || die "completing 'kiln lo' gave '$got'"
got=$(bash -c ". '$TMP/comp.bash'; COMP_WORDS=(kiln --json logs x --f); COMP_CWORD=4; _kiln; echo \${COMPREPLY[*]}")
[ "$got" = "--follow" ] || die "completing 'kiln logs x --f' gave '$got'"
got=$(bash -c ". '$TMP/comp.bash'; COMP_WORDS=(kiln list --state SUC); COMP_CWORD=3; _kiln; echo \${COMPREPLY[*]}")
[ "$got" = "SUCCEEDED" ] || die "completing '--state SUC' gave '$got'"
ok "help of every command with flags and an example; bash completion of commands, flags, states"
