#!/bin/sh
# pool_split.sh [BINDIR] - what several jobs per pool buy: N jobs on one 2-rank pool,
# first as 1-rank jobs (two run at once, each on its own rank), then the same jobs as
# 2-rank jobs (one at a time, data-parallel over both ranks: what a 1-rank job cost
# before, when it held the whole pool). Prints the makespan (first submit to last
# SUCCEEDED), jobs per hour and the mean time a job waited and ran.
#
#   JOBS=4 EPOCHS=1 TRAIN=6000 DEPTH=20 WIDTHS=16,32,64 BATCH=64 sh bench/pool_split.sh build/release/bin
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=${1:-$root/build/release/bin}
[ -x "$bindir/kiln-worker" ] || bindir=$root/build/default/bin
JOBS=${JOBS:-4}
DEPTH=${DEPTH:-20}
WIDTHS=${WIDTHS:-16,32,64}
BATCH=${BATCH:-64}
EPOCHS=${EPOCHS:-1}
TRAIN=${TRAIN:-6000}
tmp=$(mktemp -d /tmp/kiln-split-XXXXXX)
server="" pool=""
cleanup() {
    [ -z "$pool" ] || kill -TERM "$pool" 2>/dev/null || :
    [ -z "$pool" ] || wait "$pool" 2>/dev/null || :
    [ -z "$server" ] || kill -INT "$server" 2>/dev/null || :
    [ -z "$server" ] || wait "$server" 2>/dev/null || :
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
"$bindir/kiln-server" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$tmp/data" \
    --port-file "$tmp/ports" >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do [ -s "$tmp/ports" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cut -d' ' -f1 "$tmp/ports")"
ep=$(cut -d' ' -f2 "$tmp/ports")
OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none -np 2 "$bindir/kiln-worker" \
    --connect "$ep" --pool-id bench >"$tmp/pool.log" 2>&1 &
pool=$!

now() { date +%s.%N; }
run_phase() { # RANKS -> "makespan wait run" (seconds)
    ids=""
    t0=$(now)
    for i in $(seq 1 "$JOBS"); do
        spec=$(printf '{"name":"split-%s-%d","seed":%d,"model":{"arch":"resnet_cifar","depth":%d,"widths":[%s]},"data":{"dataset":"fashion-mnist","train_limit":%d,"test_limit":1000},"optim":{"lr":0.05,"batch_size":%d,"epochs":%d},"resources":{"ranks":%d}}' \
            "$1" "$i" "$i" "$DEPTH" "$WIDTHS" "$TRAIN" "$BATCH" "$EPOCHS" "$1")
        ids="$ids $(curl -s -H 'Content-Type: application/json' -d "$spec" "$url/api/v1/jobs" | jq -r .id)"
    done
    for id in $ids; do
        until st=$(curl -s "$url/api/v1/jobs/$id" | jq -r .state) && [ "$st" = SUCCEEDED ]; do
            case $st in FAILED | CANCELLED) echo "job $id $st" >&2; exit 1 ;; esac
            sleep 0.5
        done
    done
    t1=$(now)
    for id in $ids; do
        curl -s "$url/api/v1/jobs/$id" | jq -r '[.created_at, .started_at, .finished_at] | map(sub("\\.[0-9]+Z$"; "Z") | fromdate) | "\(.[1] - .[0]) \(.[2] - .[1])"'
    done | awk -v m="$(echo "$t1 $t0" | awk '{ print $1 - $2 }')" \
        '{ w += $1; r += $2; n++ } END { printf "%.1f %.1f %.1f\n", m, w / n, r / n }'
}
printf '%d jobs of ResNet-%d [%s], batch %d, Fashion-MNIST %d images, %d epoch(s), on one 2-rank pool (%s)\n\n' \
    "$JOBS" "$DEPTH" "$WIDTHS" "$BATCH" "$TRAIN" "$EPOCHS" "$(nproc) cores"
printf '| jobs as | at once | makespan s | jobs/hour | mean wait s | mean run s |\n|---|---|---|---|---|---|\n'
for ranks in 1 2; do
    set -- $(run_phase "$ranks")
    printf '| %d-rank | %d | %s | %.0f | %s | %s |\n' "$ranks" $((2 / ranks)) "$1" \
        "$(echo "$JOBS $1" | awk '{ print 3600 * $1 / $2 }')" "$2" "$3"
done
