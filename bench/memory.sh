#!/bin/sh
# memory.sh BINDIR [MODEL...] - peak memory of training, kiln against PyTorch.
#
# One model per process, training at batch 64 (forward, loss, backward, optimizer step,
# then the eval forwards of the speed bench), measured by /usr/bin/time -f %M (peak
# resident set). PyTorch's working memory is its peak minus what `import torch` alone
# holds (the libraries, not the model); the bar is kiln <= PyTorch working on every
# model, the aim half of it. Prints one markdown row per model:
#   kiln MiB | PyTorch peak MiB | PyTorch working MiB | kiln / working.
# Environment: BATCH (64), SECONDS (2 per model and side), THREADS (all cores).
set -eu
bindir=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
threads=${THREADS:-$(nproc)}
batch=${BATCH:-64}
seconds=${SECONDS_PER_MODEL:-${SECONDS:-2}}
models=${*:-$("$bindir/bench_train" --list)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# peak_kib FILE: the %M figure that /usr/bin/time wrote last into FILE
peak_kib() { tail -n 1 "$1"; }

have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1
base=0
if [ "$have_torch" = 1 ]; then
    /usr/bin/time -f %M -o "$tmp/base" /usr/bin/python3 -c 'import torch'
    base=$(peak_kib "$tmp/base")
    echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'):" \
        "import torch alone holds $((base / 1024)) MiB"
fi
echo "batch $batch, $threads threads, ${seconds} s per model and side"
echo
echo "| model | kiln MiB | PyTorch peak MiB | PyTorch working MiB | kiln / working |"
echo "|---|---:|---:|---:|---:|"
for m in $models; do
    OMP_NUM_THREADS=$threads /usr/bin/time -f %M -o "$tmp/km" "$bindir/bench_train" \
        --batch "$batch" --seconds "$seconds" "$m" > "$tmp/k" 2>&1 ||
        { echo "| $m | kiln failed: $(tail -n 1 "$tmp/k") | | | |"; continue; }
    k=$(peak_kib "$tmp/km")
    tp=- tw=- ratio=-
    if [ "$have_torch" = 1 ] &&
        /usr/bin/time -f %M -o "$tmp/tm" /usr/bin/python3 "$here/torch_train.py" "$threads" \
            "$batch" "$seconds" "$m" > "$tmp/t" 2>&1; then
        t=$(peak_kib "$tmp/tm")
        tp=$((t / 1024))
        tw=$(((t - base) / 1024))
        ratio=$(echo "$k $t $base" | awk '{printf "%.2f", $1 / ($2 - $3)}')
    fi
    echo "| $m | $((k / 1024)) | $tp | $tw | $ratio |"
done
