# test_engine_start.sh - what kiln-worker settles before main (worker/nn/startup.h).
#
# The kernel path: the best this CPU runs, or KILN_ISA (an unknown or unsupported one
# is refused, naming the variable). OpenBLAS's core: of the path's level when nothing
# is set, the user's OPENBLAS_CORETYPE kept; a core failing the sgemm self-check
# replaced by the next lower one (simulated with the KILN_BLAS_SELFTEST_FAIL hook), and
# the program refused when none passes. Under mpirun, ranks with different paths agree
# on the lowest (simulated with KILN_ISA per rank), and train the same weights.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp

version() { env -u OPENBLAS_CORETYPE -u KILN_ISA "$@" "$WORKER" --version 2>"$TMP/err"; }

out=$(version) || fail "--version failed: $(cat "$TMP/err")"
echo "$out"
best=$("$KILN_BIN/kiln-tests" --isas | tail -n 1)
echo "$out" | grep -q "^kernels $best (best on this CPU: $best)" || fail "not on the best path $best: $out"
echo "$out" | grep -q "sgemm self-check passed" || fail "no self-check: $out"
core=$(echo "$out" | sed -n 's/.* core \([A-Za-z0-9]*\) .*/\1/p')
case "$best:$core" in
avx512:SkylakeX | avx512:Cooperlake | avx512:SapphireRapids | avx2:Haswell | avx2:Zen | generic:*) ;;
*) fail "OpenBLAS core $core does not match the $best path" ;;
esac
ok "kiln-worker --version: $best kernels, OpenBLAS core $core"

for isa in $("$KILN_BIN/kiln-tests" --isas); do
    out=$(version KILN_ISA="$isa") || fail "KILN_ISA=$isa failed: $(cat "$TMP/err")"
    echo "$out" | grep -q "^kernels $isa " || fail "KILN_ISA=$isa not taken: $out"
done
ok "KILN_ISA selects each supported path"

status=0
version KILN_ISA=sse9 > /dev/null || status=$?
[ "$status" -eq 2 ] || fail "KILN_ISA=sse9 exited $status, not 2"
grep -q "KILN_ISA=sse9 is not a kernel path" "$TMP/err" || fail "unclear error: $(cat "$TMP/err")"
ok "an unknown KILN_ISA is refused: $(cat "$TMP/err")"

out=$(OPENBLAS_CORETYPE=Prescott "$WORKER" --version) || fail "OPENBLAS_CORETYPE=Prescott failed"
echo "$out" | grep -q "core Prescott (OPENBLAS_CORETYPE)" || fail "the user's core was not kept: $out"
ok "a core the user set is kept"

out=$(version KILN_BLAS_SELFTEST_FAIL="$core") || fail "fallback failed: $(cat "$TMP/err")"
grep -q "OpenBLAS core $core failed the sgemm self-check; using" "$TMP/err" ||
    fail "the fallback was not reported: $(cat "$TMP/err")"
echo "$out" | grep -q "failed the self-check: $core), sgemm self-check passed" ||
    fail "the fallback core does not show: $out"
ok "a core failing the self-check is replaced: $(cat "$TMP/err")"

status=0
version KILN_BLAS_SELFTEST_FAIL="$core,Cooperlake,SkylakeX,SapphireRapids,Haswell,Zen,Prescott" \
    > /dev/null || status=$?
[ "$status" -eq 2 ] || fail "no core passing exited $status, not 2"
grep -q "refusing to run" "$TMP/err" || fail "unclear error: $(cat "$TMP/err")"
ok "no core passing the self-check: refused"

# Two ranks on different paths (as on hosts of different CPUs) agree on the lower one.
isas=$("$KILN_BIN/kiln-tests" --isas | tr '\n' ' ')
low=$(echo "$isas" | awk '{print $1}')
high=$(echo "$isas" | awk '{print $NF}')
cat > "$TMP/job.json" <<JSON
{"name":"isa-agree","seed":3,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
          "stages":[{"width":16,"mids":[16]}]},
 "data":{"dataset":"synthetic","synthetic":{"train":128,"test":32}},
 "optim":{"batch_size":32,"epochs":1}}
JSON
# One OpenBLAS core for every rank of both runs, so that the kernel path is the only
# difference between the ranks and the two runs must agree bit for bit.
export OPENBLAS_CORETYPE=Prescott
kiln_mpirun -x OPENBLAS_CORETYPE -np 1 -x KILN_ISA="$high" "$WORKER" run "$TMP/job.json" \
    --out "$TMP/mixed" --no-progress : -np 1 -x KILN_ISA="$low" "$WORKER" run "$TMP/job.json" \
    --out "$TMP/mixed" --no-progress > "$TMP/log" 2>&1 ||
    fail "the mixed-path job failed: $(tail -5 "$TMP/log")"
if [ "$low" != "$high" ]; then
    grep -q "kernels lowered from $high to $low" "$TMP/log" || fail "no agreement: $(cat "$TMP/log")"
fi
KILN_ISA="$low" kiln_mpirun -np 2 -x KILN_ISA -x OPENBLAS_CORETYPE "$WORKER" run "$TMP/job.json" --out "$TMP/same" \
    --no-progress > "$TMP/log2" 2>&1 || fail "the $low job failed: $(tail -5 "$TMP/log2")"
"$ST_DIFF" "$TMP/mixed/model.safetensors" "$TMP/same/model.safetensors" --tol 0 > "$TMP/diff" ||
    fail "mixed ranks trained other weights than two $low ranks: $(tail -3 "$TMP/diff")"
ok "ranks on $high and $low agreed on $low and trained the same weights"
