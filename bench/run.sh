#!/bin/sh
# run.sh BINDIR - kiln's benchmarks (`make bench`). Prints:
#   1. layer kernels: forward/backward GFLOP/s at the reference models' shapes,
#      beside cblas_sgemm alone (bench_conv, bench_dense);
#   2. training and inference throughput of the benchmark models in kiln and,
#      where /usr/bin/python3 has torch, in PyTorch at the same batch and
#      thread count, with the ratios (bench/train.sh; its header names the CPU,
#      the kernel path and the BLAS core).
# Environment: THREADS (default: all cores), BATCH (64), SECONDS_PER_MODEL (8).
set -eu
bindir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
threads=${THREADS:-$(nproc)}

echo "== layer kernels (batch 64, $threads threads)"
for b in bench_conv bench_dense bench_loader; do
    [ -x "$bindir/$b" ] && OMP_NUM_THREADS=$threads "$bindir/$b"
done

echo
echo "== data parallel (bench/dist.sh)"
"$here/dist.sh" "$bindir" || true
echo
echo "== training and inference throughput, kiln against PyTorch (bench/train.sh)"
"$here/train.sh" "$bindir"

echo
echo "== service: HTTP and metric ingestion (bench/server.sh)"
sh "$here/server.sh" "$bindir"

echo
echo "== several jobs per pool (bench/pool_split.sh)"
sh "$here/pool_split.sh" "$bindir"
