#!/bin/sh
# loader.sh BIN [ROUNDS] - the file loader's images/s beside torchvision's
# DataLoader (2 workers each) at 224x224 with the DeiT training transforms,
# on the same ImageFolder (4,000 Fashion-MNIST images upscaled to 320x320
# RGB JPEGs, made by BIN/mkimgfolder), measured interleaved A B A B, then
# the medians and their ratio. Then the memory bar: peak RSS of a 60-step
# DeiT-recipe training run on a 50,000-JPEG folder and on a 5,000-JPEG
# folder (64x64), which must stay under 1 GiB and not grow with the folder.
# Needs /usr/bin/python3 with torchvision and /usr/bin/time. Not in make test.
set -eu
BIN=${1:?usage: loader.sh BIN [ROUNDS]}
ROUNDS=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/kiln-bench-loader-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$BIN/mkimgfolder" /usr/share/datasets/fashion-mnist "$tmp/f320" --train 4000 --test 100 --size 320
k="" t=""
for r in $(seq "$ROUNDS"); do
    a=$(OMP_NUM_THREADS=1 "$BIN/bench_imgloader" "$tmp/f320" 224 2 40 deit | sed 's/.*"images_per_s":\([0-9.]*\).*/\1/')
    b=$(/usr/bin/python3 "$here/torch_imgloader.py" "$tmp/f320" 224 2 40 | sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')
    echo "round $r: kiln $a img/s, torchvision $b img/s"
    k="$k $a"
    t="$t $b"
done
median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mk=$(median $k)
mt=$(median $t)
echo "loader at 224, DeiT transforms, 2 workers: kiln $mk img/s, torchvision DataLoader $mt img/s, ratio $(awk -v a="$mk" -v b="$mt" 'BEGIN { printf "%.2f", a / b }')"

rss() { # FOLDER: peak RSS in KiB of a 60-step training run
    cat > "$tmp/job.json" <<JSON
{"model":{"arch":"resnet_cifar","depth":8,"num_classes":10},
 "data":{"dataset":"folder","root":"$1","image":{"size":64,"workers":2,"prefetch":2}},
 "optim":{"recipe":"deit","batch_size":64,"epochs":1,"max_steps":60}}
JSON
    OMP_NUM_THREADS=2 /usr/bin/time -f '%M' -o "$tmp/rss" "$BIN/kiln-worker" run "$tmp/job.json" \
        --out "$tmp/out" --no-progress > "$tmp/run.log" 2>&1 || { tail -3 "$tmp/run.log"; exit 1; }
    ips=$(grep '"event":"finished"' "$tmp/run.log" | sed 's/.*"step_images_per_s":\([0-9.]*\).*/\1/')
    echo "$(cat "$tmp/rss") $ips"
}
"$BIN/mkimgfolder" /usr/share/datasets/fashion-mnist "$tmp/f50k" --train 50000 --test 1000 --size 64
"$BIN/mkimgfolder" /usr/share/datasets/fashion-mnist "$tmp/f5k" --train 5000 --test 1000 --size 64
set -- $(rss "$tmp/f50k")
big=$1 big_ips=$2
set -- $(rss "$tmp/f5k")
small=$1
echo "peak RSS of training (64x64, batch 64, DeiT recipe): 50,000 files $((big / 1024)) MiB, 5,000 files $((small / 1024)) MiB; training $big_ips img/s in steps"
[ "$big" -lt 1048576 ] || { echo "FAIL: over 1 GiB"; exit 1; }
