# test_dist_dead_rank.sh - a rank killed mid-job ends the whole attempt quickly.
#
# Two ranks train a job long enough to be running when rank 1 is killed with
# SIGKILL. mpirun must notice, take down rank 0 and exit non-zero within 10
# seconds, saying which rank died; no process may be left behind.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp
cat > "$TMP/job.json" <<JSON
{"name":"dead-rank","seed":1,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
          "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]},
 "data":{"dataset":"synthetic","synthetic":{"train":4096,"test":128}},
 "optim":{"batch_size":32,"epochs":200}}
JSON
kiln_mpirun -np 2 "$WORKER" run "$TMP/job.json" --out "$TMP/out" --no-progress \
    > "$TMP/log" 2>&1 &
mpirun_pid=$!
cleanup_hook() { kill -9 "$mpirun_pid" 2>/dev/null || true; }

# wait until training is under way (the first metric line), at most 60 s
i=0
until grep -q '"name":"train/loss"' "$TMP/log"; do
    i=$((i + 1))
    [ $i -le 600 ] || fail "the job did not start: $(tail -3 "$TMP/log")"
    kill -0 "$mpirun_pid" 2>/dev/null || fail "mpirun ended early: $(tail -3 "$TMP/log")"
    sleep 0.1
done
victim=""
for p in $(pgrep -f "kiln-worker run $TMP/job.json"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
        victim=$p
    fi
done
[ -n "$victim" ] || fail "could not find rank 1"
t0=$(now)
kill -9 "$victim"
status=0
wait "$mpirun_pid" || status=$?
t1=$(now)
elapsed=$(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}')
[ "$status" -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
awk -v e="$elapsed" 'BEGIN { exit !(e <= 10) }' || fail "the job took ${elapsed}s to end"
grep -qiE "rank 1|signal 9|killed" "$TMP/log" || fail "no clear error: $(tail -5 "$TMP/log")"
sleep 0.5
if pgrep -f "kiln-worker run $TMP/job.json" > /dev/null; then
    fail "a rank is still running after the job ended"
fi
ok "killed rank 1: mpirun exited $status in ${elapsed}s with a clear error, nothing left running"
