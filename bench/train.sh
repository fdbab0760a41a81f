#!/bin/sh
# train.sh BINDIR [MODEL...] - kiln against PyTorch, training and inference img/s.
#
# Models interleaved (kiln, PyTorch, PyTorch with kiln's BLAS core, per model), batch
# 64, all cores, in the environment a user gets: OPENBLAS_CORETYPE, the thread
# variables and KILN_ISA are unset (KEEP_ENV=1 keeps them). Prints the engine line
# (kernel path, BLAS core), cblas_sgemm's peak in this run, then one row per model:
#   kiln train/infer img/s, PyTorch train/infer img/s, kiln/PyTorch;
#   PyTorch again with OPENBLAS_CORETYPE set to kiln's core by hand, and the ratio
#   against that (kiln's own lead, apart from its BLAS fix);
#   kiln's training GFLOP/s and its share of the sgemm peak.
# Environment: BATCH (64), SECONDS or SECONDS_PER_MODEL (8 per model and side), THREADS (all cores), ROUNDS (1):
# with ROUNDS=N every model runs N times on each side, interleaved, and each column is
# the median of its N figures (PyTorch's own run-to-run spread on a shared machine
# reaches tens of per cent).
set -eu
bindir=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
if [ "${KEEP_ENV:-0}" != 1 ]; then
    unset OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS OMP_NUM_THREADS GOMP_SPINCOUNT \
        OMP_WAIT_POLICY KILN_THREADS KILN_ISA OPENBLAS_L2_SIZE 2>/dev/null || true
fi
threads=${THREADS:-$(nproc)}
batch=${BATCH:-64}
# (bash's own SECONDS counts the shell's age: only sh's is the knob)
[ -n "${BASH_VERSION:-}" ] && sec_env=8 || sec_env=${SECONDS:-8}
seconds=${SECONDS_PER_MODEL:-$sec_env}
rounds=${ROUNDS:-1}
models=${*:-$("$bindir/bench_train" --list)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $threads threads"
OMP_NUM_THREADS=$threads "$bindir/bench_train" --peak --seconds 0 --batch 1 none | tee "$tmp/peak"
core=$(sed -n 's/.* core \([A-Za-z0-9]*\) .*/\1/p' "$tmp/peak")
peak=$(sed -n 's/^sgemm peak: \([0-9.]*\).*/\1/p' "$tmp/peak")
[ "$have_torch" = 1 ] && echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
echo
[ "$rounds" -gt 1 ] && echo "each figure: the median of $rounds interleaved runs"
printf '%-24s | %-17s | %-17s | %-6s | %-17s | %-6s | %-16s\n' model \
    "kiln train/infer" "torch train/infer" ratio "torch+core train" ratio "kiln GFLOP/s"
# field NAME FILE: the number after the word NAME in FILE ("" if absent)
field() { awk -v w="$1" '{for (i = 1; i < NF; i++) if ($i == w) {print $(i + 1); exit}}' "$2"; }
# median of the numbers on stdin ("-" for none)
median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
    else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for m in $models; do
    : >"$tmp/kt"; : >"$tmp/ki"; : >"$tmp/kg"; : >"$tmp/tt"; : >"$tmp/ti"; : >"$tmp/ft"
    r=0
    while [ "$r" -lt "$rounds" ]; do # interleaved: kiln, PyTorch, PyTorch with kiln's core
        if OMP_NUM_THREADS=$threads "$bindir/bench_train" --batch "$batch" --seconds "$seconds" \
            "$m" >"$tmp/k" 2>&1; then
            field train "$tmp/k" >>"$tmp/kt"
            field infer "$tmp/k" >>"$tmp/ki"
            awk '{for (i = 2; i < NF; i++) if ($(i + 1) == "GFLOP/s") print $i}' "$tmp/k" >>"$tmp/kg"
        else
            echo "$m: kiln failed: $(tail -1 "$tmp/k")"
        fi
        if [ "$have_torch" = 1 ]; then
            /usr/bin/python3 "$here/torch_train.py" "$threads" "$batch" "$seconds" "$m" \
                >"$tmp/t" 2>&1 && field train "$tmp/t" >>"$tmp/tt" && field infer "$tmp/t" >>"$tmp/ti"
            OPENBLAS_CORETYPE=$core /usr/bin/python3 "$here/torch_train.py" "$threads" "$batch" \
                "$seconds" "$m" >"$tmp/f" 2>&1 && field train "$tmp/f" >>"$tmp/ft"
        fi
        r=$((r + 1))
    done
    kt=$(median <"$tmp/kt") ki=$(median <"$tmp/ki") kg=$(median <"$tmp/kg")
    tt=$(median <"$tmp/tt") ti=$(median <"$tmp/ti") ft=$(median <"$tmp/ft")
    [ "$kt" = - ] && continue
    ratio() { [ "$2" = - ] && echo - || echo "$1 $2" | awk '{printf "%.2fx", $1 / $2}'; }
    r1=$(ratio "$kt" "$tt") r2=$(ratio "$kt" "$ft")
    share=$(echo "$kg $peak" | awk '{printf "%.0f%%", 100 * $1 / $2}')
    printf '%-24s | %8s %8s | %8s %8s | %6s | %17s | %6s | %7s (%s)\n' "$m" "$kt" "$ki" "$tt" \
        "$ti" "$r1" "$ft" "$r2" "$kg" "$share"
done
