# lib.sh - what the job benchmarks (adapt.sh, adapt_mobile.sh, prune_resnet20.sh) share;
# sourced, with $root set to the checkout.
#
#   bench_worker [BINDIR]   sets WORKER: BINDIR/kiln-worker, by default build/release/bin's,
#                           else build/default/bin's; exits naming the folder if none
#   bench_runner MODE       writes $OUT/run1.sh NAME: runs $OUT/NAME.json into $OUT/NAME,
#                           log in NAME.log, CPU seconds in NAME.time; skips a job that
#                           already finished (a rerun after an interruption goes on).
#                           MODE stop: a failed job fails the phase; keep: it leaves
#                           NAME.failed (its last lines) and the phase goes on
#   bench_phase NAME...     runs the jobs $PAR at a time with run1.sh

bench_worker() {
    bindir=${1:-}
    if [ -z "$bindir" ]; then
        bindir="$root/build/release/bin"
        [ -x "$bindir/kiln-worker" ] || bindir="$root/build/default/bin"
    fi
    WORKER="$bindir/kiln-worker"
    [ -x "$WORKER" ] || { echo "no kiln-worker in $bindir (make first)" >&2; exit 2; }
}

bench_runner() {
    if [ "$1" = keep ]; then
        on_fail="tail -3 \"$OUT/\$n.log\" > \"$OUT/\$n.failed\"; echo \"FAILED \$n: \$(cat \"$OUT/\$n.failed\")\"; exit 0"
    else
        on_fail="echo \"job \$n failed: \$(tail -3 \"$OUT/\$n.log\")\" >&2; exit 1"
    fi
    cat > "$OUT/run1.sh" <<EOS
#!/bin/sh
n=\$1
grep -q '"event":"finished"' "$OUT/\$n.log" 2>/dev/null && exit 0
rm -f "$OUT/\$n.failed"
/usr/bin/time -f "%U %S" -o "$OUT/\$n.time" "$WORKER" run "$OUT/\$n.json" --out "$OUT/\$n" \\
    --no-progress > "$OUT/\$n.log" 2>&1 || { $on_fail; }
echo "done \$n (\$(awk '{ printf "%.0f", \$1 + \$2 }' "$OUT/\$n.time") CPU s)"
EOS
    chmod +x "$OUT/run1.sh"
}

bench_phase() {
    printf '%s\n' "$@" | xargs -P "$PAR" -n 1 "$OUT/run1.sh"
}
