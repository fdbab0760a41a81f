#!/bin/sh
# dist.sh BINDIR - data-parallel throughput: 1 rank x 2 threads vs 2 ranks x 1 thread.
#
# Trains CeiT (the accuracy-anchor config) and ResNet-20 on Fashion-MNIST
# (the first TRAIN_LIMIT images, one epoch, global batch 128) both ways and
# prints images/s of the optimizer steps alone (set-up and evaluation
# excluded), the allreduce time per step, and the ratio. The bar: 2 x 1 at
# most 15% slower than 1 x 2. Run it on an otherwise idle machine.
set -eu
bindir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
limit=${TRAIN_LIMIT:-12800}
tmp=$(mktemp -d /tmp/kiln-dist-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" | tail -1; }
printf "%-10s %-18s %12s %16s\n" model config "img/s" "allreduce ms/step"
for model in ceit resnet20; do
    sed -e 's/"epochs": 3/"epochs": 1/' -e 's/"warmup_epochs": [0-9]*/"warmup_epochs": 0.5/' -e "s/\"augment\"/\"train_limit\": $limit, \"test_limit\": 1000, \"augment\"/" \
        "$here/jobs/anchor-$model.json" > "$tmp/$model.json"
    KILN_THREADS=2 "$bindir/kiln-worker" run "$tmp/$model.json" --out "$tmp/a" --no-progress \
        > "$tmp/one.log" 2>&1 || { tail -3 "$tmp/one.log"; exit 1; }
    mpirun --oversubscribe -np 2 "$bindir/kiln-worker" run "$tmp/$model.json" --out "$tmp/b" \
        --no-progress > "$tmp/two.log" 2>&1 || { tail -3 "$tmp/two.log"; exit 1; }
    one=$(field step_images_per_s < "$tmp/one.log")
    two=$(field step_images_per_s < "$tmp/two.log")
    ar=$(field allreduce_ms_per_step < "$tmp/two.log")
    printf "%-10s %-18s %12.1f %16s\n" "$model" "1 rank x 2 threads" "$one" "-"
    printf "%-10s %-18s %12.1f %16.2f\n" "$model" "2 ranks x 1 thread" "$two" "$ar"
    awk -v a="$one" -v b="$two" -v m="$model" 'BEGIN {
        printf "%-10s 2x1 / 1x2 = %.3f (%s)\n", m, b / a, (b >= 0.85 * a) ? "within 15%" : "MORE than 15% slower" }'
done
