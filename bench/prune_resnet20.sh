#!/bin/sh
# prune_resnet20.sh - DMCP against uniform width on ResNet-20 / Fashion-MNIST.
#
#   bench/prune_resnet20.sh [BINDIR]     (default build/release/bin, else build/default/bin)
#
# At 50 % and 30 % of ResNet-20's FLOPs: DMCP's expected architecture (ES)
# and the uniform width multiplier meeting the same target, each retrained
# from scratch with the same recipe and SEEDS seeds; prints mean +- std of
# the test top-1, the MFLOPs and params of each network, the per-layer
# widths found, and the CPU seconds spent. The DMCP warm-up runs once: the
# 30 % search starts from the 50 % job's warm-up supernet (init_from, no
# warm-up of its own) with the weight learning rate where the 50 % job's
# cosine stands at that point, so both searches see the same schedule.
#
# Sized for about 30 CPU-minutes on a 2-core machine (two jobs at a time,
# one thread each). Knobs (environment):
#   TRAIN_LIMIT (5000)  training images used, by every phase
#   TEST_LIMIT  (5000)  test images (the same ones for every run)
#   WARMUP (4) SEARCH (2)  DMCP epochs: weight-only warm-up, then alternating
#   RETRAIN (6)         retrain epochs (SGD 0.1 Nesterov, cosine, wd 5e-4, batch 128)
#   ARCH_LR (10)        architecture lr (cosine to ARCH_LR/5); the reference's 0.5 is
#                       for ~12,500 architecture steps, a CPU run has ~80
#   SEEDS (3)  PAR (2)  OUT (bench-out/prune_resnet20)
#   TABLE_ONLY=1        print the table of an earlier run in OUT, run nothing
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
bench_worker "${1:-}"

TRAIN_LIMIT=${TRAIN_LIMIT:-5000}
TEST_LIMIT=${TEST_LIMIT:-5000}
WARMUP=${WARMUP:-4}
SEARCH=${SEARCH:-2}
RETRAIN=${RETRAIN:-6}
ARCH_LR=${ARCH_LR:-10}
SEEDS=${SEEDS:-3}
PAR=${PAR:-2}
OUT=${OUT:-$root/bench-out/prune_resnet20}
mkdir -p "$OUT"
export KILN_THREADS=1

MODEL='{"arch":"resnet_cifar","depth":20,"widths":[16,32,64]}'
DATA="{\"dataset\":\"fashion-mnist\",\"train_limit\":$TRAIN_LIMIT,\"test_limit\":$TEST_LIMIT}"
OPTIM="{\"optimizer\":\"sgd\",\"lr\":0.1,\"weight_decay\":5e-4,\"batch_size\":128,\"epochs\":$RETRAIN}"
arch_min=$(awk -v a="$ARCH_LR" 'BEGIN { print a / 5 }')
# the weight lr of a WARMUP+SEARCH-epoch cosine 0.1 -> 0.016 at the end of the warm-up
lr_tail=$(awk -v w="$WARMUP" -v s="$SEARCH" \
    'BEGIN { print 0.016 + 0.084 * (1 + cos(3.14159265358979 * w / (w + s))) / 2 }')

# run NAME JSON: one job, its CPU time in NAME.time
run() {
    printf '%s\n' "$2" > "$OUT/$1.json"
    /usr/bin/time -f "%U %S" -o "$OUT/$1.time" \
        "$WORKER" run "$OUT/$1.json" --out "$OUT/$1" --no-progress \
        --metrics "$OUT/$1.metrics" > "$OUT/$1.log" 2>&1 ||
        { echo "job $1 failed: $(tail -3 "$OUT/$1.log")" >&2; return 1; }
    echo "done $1 ($(awk '{ printf "%.0f", $1 + $2 }' "$OUT/$1.time") CPU s)"
}

prune_job() { # NAME SEED PRUNE-OBJECT
    run "$1" "{\"name\":\"$1\",\"type\":\"prune\",\"seed\":$2,\"model\":$MODEL,\"data\":$DATA,
\"optim\":$OPTIM,\"prune\":$3}"
}

train_job() { # NAME SEED ARCH-FILE
    run "$1" "{\"name\":\"$1\",\"seed\":$2,\"model\":$(cat "$3"),\"data\":$DATA,\"optim\":$OPTIM}"
}

wait_for() {
    while [ ! -s "$1" ]; do sleep 5; done
}

dmcp_common="\"search_epochs\":$SEARCH,\"search\":{\"batch_size\":128},
\"arch\":{\"lr\":$ARCH_LR,\"min_lr\":$arch_min},\"eval_limit\":1000"

lane_a() {
    prune_job dmcp50-s0 0 "{\"method\":\"dmcp\",\"target_ratio\":0.5,\"warmup_epochs\":$WARMUP,
$dmcp_common}"
    run dmcp30-s0 "{\"name\":\"dmcp30-s0\",\"type\":\"prune\",\"seed\":0,
\"init_from\":\"$OUT/dmcp50-s0/supernet.safetensors\",\"model\":$MODEL,\"data\":$DATA,
\"optim\":$OPTIM,\"prune\":{\"method\":\"dmcp\",\"target_ratio\":0.3,\"warmup_epochs\":0,
\"search_epochs\":$SEARCH,\"search\":{\"batch_size\":128,\"lr\":$lr_tail,\"min_lr\":0.016},
\"arch\":{\"lr\":$ARCH_LR,\"min_lr\":$arch_min},\"eval_limit\":1000}}"
    s=1
    while [ "$s" -lt "$SEEDS" ]; do
        [ $((s % 2)) -eq 1 ] || { s=$((s + 1)); continue; }
        train_job "dmcp50-s$s" "$s" "$OUT/dmcp50-s0/architecture.json"
        train_job "dmcp30-s$s" "$s" "$OUT/dmcp30-s0/architecture.json"
        s=$((s + 1))
    done
}

lane_b() {
    for t in 50 30; do
        prune_job "uniform$t-s0" 0 "{\"method\":\"uniform\",\"target_ratio\":0.$t}"
        s=1
        while [ "$s" -lt "$SEEDS" ]; do
            train_job "uniform$t-s$s" "$s" "$OUT/uniform$t-s0/architecture.json"
            s=$((s + 1))
        done
    done
    s=2
    while [ "$s" -lt "$SEEDS" ]; do
        wait_for "$OUT/dmcp50-s0/architecture.json"
        train_job "dmcp50-s$s" "$s" "$OUT/dmcp50-s0/architecture.json"
        wait_for "$OUT/dmcp30-s0/architecture.json"
        train_job "dmcp30-s$s" "$s" "$OUT/dmcp30-s0/architecture.json"
        s=$((s + 2))
    done
}

echo "== DMCP vs uniform, ResNet-20 on Fashion-MNIST ($TRAIN_LIMIT train / $TEST_LIMIT test images)"
echo "   DMCP: $WARMUP warm-up + $SEARCH search epochs, arch lr $ARCH_LR -> $arch_min;" \
    "retrain: $RETRAIN epochs, $SEEDS seeds; output in $OUT"
if [ -z "${TABLE_ONLY:-}" ]; then
    t0=$(date +%s)
    if [ "$PAR" -ge 2 ]; then
        lane_a &
        pa=$!
        lane_b
        wait "$pa"
    else
        lane_a
        lane_b
    fi
    echo "wall time: $(($(date +%s) - t0)) s"
fi

python3 - "$OUT" "$SEEDS" <<'PY'
import json, os, statistics, sys
out, seeds = sys.argv[1], int(sys.argv[2])
def summary(name):
    for line in open(os.path.join(out, name + ".log")):
        if '"event":"finished"' in line:
            return json.loads(line[line.index("{"):])
    raise SystemExit(f"{name}: no summary")
cpu = 0.0
for f in os.listdir(out):
    if f.endswith(".time"):
        u, s = open(os.path.join(out, f)).read().split()[-2:]
        cpu += float(u) + float(s)
print()
print(f"{'target':>7} {'method':>8} {'MFLOPs':>8} {'params':>8}  {'top-1 (mean +- std over ' + str(seeds) + ' seeds)':>34}  per-seed")
full = None
for t in (50, 30):
    for meth in ("dmcp", "uniform"):
        accs = [summary(f"{meth}{t}-s{s}")["test_top1"] for s in range(seeds)]
        rep = json.load(open(os.path.join(out, f"{meth}{t}-s0", "report.json")))
        full = rep["before"]["mflops"]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{t:>6}% {meth:>8} {rep['after']['mflops']:8.3f} {rep['after']['params']:8d}  "
              f"{100*statistics.mean(accs):27.2f} +- {100*sd:4.2f}  "
              + " ".join(f"{100*a:.2f}" for a in accs))
print(f"(ResNet-20: {full:.3f} MFLOPs; targets 15.511 and 9.307)")
for t in (50, 30):
    d = [summary(f"dmcp{t}-s{s}")["test_top1"] - summary(f"uniform{t}-s{s}")["test_top1"]
         for s in range(seeds)]
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    print(f"{t:>3}%: DMCP - uniform, paired by seed: {100*statistics.mean(d):+.2f} +- {100*sd:.2f} "
          f"(" + " ".join(f"{100*x:+.2f}" for x in d) + ")")
print()
print("widths per unit (stem+layer1 stream, inner widths, layer2/layer3 streams):")
for t in (50, 30):
    for meth in ("dmcp", "uniform"):
        rep = json.load(open(os.path.join(out, f"{meth}{t}-s0", "report.json")))
        ws = " ".join(f"{u['name']}={u['kept']}/{u['channels']}" for u in rep["units"])
        extra = ""
        if meth == "uniform":
            extra = f"  (multiplier {rep['width_multiplier']:.4f})"
        print(f"{t:>3}% {meth:>8}: {ws}{extra}")
for t in (50, 30):
    rep = json.load(open(os.path.join(out, f"dmcp{t}-s0", "report.json")))
    d = rep["derive"]
    print(f"{t:>3}% dmcp search: supernet top-1 {rep['before']['top1']:.4f}, ES sub-net with "
          f"inherited weights {rep['after']['top1_inherited']:.4f}; ES before fitting "
          f"{d['es']['mflops']:.3f} MFLOPs, fitted {d['es_fitted']['mflops']:.3f} "
          f"({d['es_fitted']['moved_channels']} channels moved)")
print(f"\nCPU time of all jobs: {cpu/60:.1f} min")
PY
