#!/bin/sh
# run.sh BINDIR - kiln's benchmarks (`make bench`). Prints:
#   1. layer kernels: forward/backward GFLOP/s at the reference models' shapes,
#      beside cblas_sgemm alone (bench_conv, bench_dense);
#   2. training throughput of the reference models in kiln and, where
#      /usr/bin/python3 has torch, in PyTorch at the same batch and thread
#      count, with the ratio.
# Environment: THREADS (default: all cores), BATCH (64), SECONDS (8 per model).
set -eu
bindir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
threads=${THREADS:-$(nproc)}
batch=${BATCH:-64}
seconds=${SECONDS_PER_MODEL:-8}

echo "== layer kernels (batch 64, $threads threads)"
for b in bench_conv bench_dense bench_loader; do
    [ -x "$bindir/$b" ] && OMP_NUM_THREADS=$threads "$bindir/$b"
done

echo
echo "== data parallel (bench/dist.sh)"
"$here/dist.sh" "$bindir" || true
echo
echo "== training throughput (batch $batch, $threads threads)"
kiln_out=$(mktemp)
torch_out=$(mktemp)
trap 'rm -f "$kiln_out" "$torch_out"' EXIT
OMP_NUM_THREADS=$threads "$bindir/bench_train" --batch "$batch" --seconds "$seconds" | tee "$kiln_out"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "-- PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), same models"
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$here/torch_train.py" "$threads" "$batch" "$seconds" | tee "$torch_out"
    echo "-- kiln / PyTorch"
    awk 'NR==FNR { for (i = 1; i <= NF; i++) if ($i == "train") k[$1] = $(i + 1); next }
         { for (i = 1; i <= NF; i++) if ($i == "train") t = $(i + 1);
           if ($1 in k) printf "%-24s kiln %8.1f  torch %8.1f  img/s  ratio %.2fx\n", $1, k[$1], t, k[$1] / t }' \
        "$kiln_out" "$torch_out"
else
    echo "(no torch in /usr/bin/python3: PyTorch side skipped; install python3-torch)"
fi

echo
echo "== service: HTTP and metric ingestion (bench/server.sh)"
sh "$here/server.sh" "$bindir"
